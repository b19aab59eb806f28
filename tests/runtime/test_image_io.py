import io
import zlib

import numpy as np
import pytest
from PIL import Image

from fundusrt.runtime.image_io import ImageReadError, decode_image, read_image


def _orange(h=24, w=32):
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 200, 90, 30
    return image


def test_jpeg_decodes_to_rgb_uint8(write_rgb):
    image = read_image(write_rgb("a.jpg", _orange()))
    assert image.dtype == np.uint8 and image.shape == (24, 32, 3)
    r, g, b = image[12, 16].astype(int)
    assert abs(r - 200) < 6 and abs(g - 90) < 6 and abs(b - 30) < 6


def test_grayscale_becomes_three_equal_channels(write_rgb):
    gray = np.tile(np.arange(32, dtype=np.uint8) * 8, (10, 1))
    image = read_image(write_rgb("g.png", gray))
    assert image.shape == (10, 32, 3)
    assert (image[..., 0] == gray).all() and (image[..., 1] == gray).all() and (image[..., 2] == gray).all()


def test_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 250, 10
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = read_image(path)
    assert image.shape == (8, 8, 3) and (image[..., 0] == 250).all() and (image[..., 1:] == 0).all()


def test_16_bit_scales_to_8_bit(write_rgb):
    deep = np.zeros((4, 4, 3), np.uint16)
    deep[..., 0], deep[..., 1], deep[..., 2] = 65535, 32896, 257
    image = read_image(write_rgb("d.png", deep))
    assert image.dtype == np.uint8
    assert tuple(image[0, 0]) == (255, 128, 1)


def test_exif_orientation_is_applied(tmp_path):
    # 40 wide, 20 high, left half red; orientation 6 means "rotate 90 degrees clockwise to view".
    raw = np.zeros((20, 40, 3), np.uint8)
    raw[:, :20, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    Image.fromarray(raw).save(path, exif=exif, quality=95)
    image = read_image(path)
    assert image.shape == (40, 20, 3)  # upright: now 20 wide, 40 high
    assert image[5, 10, 0] > 200 and image[35, 10, 0] < 50  # the red half is now on top


def test_one_pixel_image(write_rgb):
    assert read_image(write_rgb("one.png", np.full((1, 1, 3), 7, np.uint8))).shape == (1, 1, 3)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file"),
        (b"this is a text file, not a photograph\n", "not a decodable image"),
    ],
)
def test_bad_bytes_give_a_one_line_reason(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and reason in message and "\n" not in message


def test_truncated_jpeg_is_refused(write_rgb, tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    data = write_rgb("full.jpg", noise).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated JPEG"):
        read_image(cut)


def test_truncated_png_is_refused(write_rgb, tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    data = write_rgb("full.png", noise).read_bytes()
    with pytest.raises(ImageReadError, match="truncated PNG"):
        decode_image(data[: len(data) // 2], source="cut.png")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


def test_pixel_limit_refuses_before_decoding(write_rgb):
    path = write_rgb("big.png", np.zeros((300, 400, 3), np.uint8))
    with pytest.raises(ImageReadError, match="400x300 pixels exceeds the limit of 100,000"):
        read_image(path, max_pixels=100_000)
    assert read_image(path, max_pixels=120_000).shape == (300, 400, 3)


def test_decompression_bomb_header_is_refused():
    # A PNG header claiming 60,000 x 60,000 pixels, with no pixel data behind it.
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = (60_000).to_bytes(4, "big") * 2  # IHDR width and height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # and the chunk's checksum
    with pytest.raises(ImageReadError, match="decompression bomb|exceeds the limit"):
        decode_image(bytes(data), source="bomb.png")
