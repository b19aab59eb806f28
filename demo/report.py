"""demo-out/report.md (and report.html): every section filled from the files the demo's steps wrote."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from fundusrt.export.check import format_table
from fundusrt.train.bundle_evaluation import markdown as evaluation_table
from fundusrt.train.tables import markdown_table


def write_report(out: Path, timings: dict, recipe: dict) -> Path:
    sections = [
        _header(out, timings),
        _training(out, recipe),
        _parity(out),
        _screening(out),
        _evaluation(out),
        _benchmark(out),
    ]
    text = "\n\n".join(sections) + "\n"
    (out / "report.md").write_text(text)
    _html(out, text)
    return out / "report.md"


def _header(out: Path, timings: dict) -> str:
    bench = _json(out / "bench" / "bench.json") or {}
    m = bench.get("machine", {})
    steps = " · ".join(f"{k} {v:.0f} s" for k, v in timings.items())
    return (
        "# fundusrt demo report\n\n"
        "Everything below was produced by `make demo` on phantoms (synthetic fundus photographs with exact "
        "ground truth) and one real photograph (`skimage.data.retina()`), on this machine: "
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, GPU: {m.get('gpu') or 'none'}; "
        f"Python {m.get('python', '?')}, torch {m.get('torch', '?')}, ONNX Runtime {m.get('onnxruntime', '?')}, "
        f"OpenCV {m.get('cv2', '?')}. TensorRT: {m.get('tensorrt', 'absent')} (not run here).\n\n"
        f"Step times: {steps} (total {sum(timings.values()) / 60:.1f} min).\n\n"
        "The models are trained for a few minutes at reduced size: the numbers show the whole chain "
        "working, not what the method reaches (see the README's learning benchmark for that).\n\n"
        "![a phantom and its ground truth](phantom_preview.png)"
    )


def _training(out: Path, recipe: dict) -> str:
    rows, plots = [], []
    for task in ("locate", "segment", "classify"):
        run = out / "runs" / task
        summary = _json(run / "summary.json") or {}
        for member, metrics in summary.get("members", {}).items():
            history = [json.loads(line) for line in (run / member / "history.jsonl").read_text().splitlines()]
            best = max(history, key=lambda h: h.get("score", float("-inf")))
            shown = {k: v for k, v in metrics.items() if k not in ("score",)}
            text = ", ".join(f"{k} {v:.3g}" for k, v in shown.items())
            seconds = sum(h["seconds"] for h in history)
            rows.append([task, f"`{' '.join(recipe[task])}`", member, best["epoch"], text, f"{seconds:.0f} s"])
        plots.append(_loss_plot(out, task, run))
    headers = ["stage", "recipe", "member", "best epoch", "validation metrics", "time"]
    lines = ["## Training (best epoch on the 20 % held out by name)", "", markdown_table(headers, rows), ""]
    lines += [f"![{task} loss]({p})" for task, p in zip(("locate", "segment", "classify"), plots) if p]
    return "\n".join(lines)


def _loss_plot(out: Path, task: str, run: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(4, 3))
    for history in sorted(run.glob("*/history.jsonl")):
        rows = [json.loads(line) for line in history.read_text().splitlines()]
        ax.plot([r["epoch"] for r in rows], [r["loss"] for r in rows], marker="o", label=history.parent.name)
    ax.set(title=f"{task}: training loss", xlabel="epoch", ylabel="loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / f"loss_{task}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def _parity(out: Path) -> str:
    rows = _json(out / "bundle" / "check.json")
    if not rows:
        return "## Parity: the engines against PyTorch\n\nNot run."
    missed = [f"{r['graph']} {r.get('backend', 'onnxruntime')} {r['precision']}" for r in rows if not r["ok"]]
    verdict = "every graph and precision within tolerance" if not missed else "outside tolerance: " + ", ".join(missed)
    judged = [f"{r['graph']} {r.get('backend', 'onnxruntime')} {r['precision']}" for r in rows if r.get("judged_by")]
    note = (
        f"\n\nRows judged by their task metric ({', '.join(judged)}), as their `judged_by` column says. Locator: "
        "the map agrees within its tolerance but the peak figure is ill-posed (on a flat-topped map the sub-pixel "
        "peak moves with the last bits of the map), so the mean fovea distance must agree to 0.05 px of the "
        "photograph instead. Classifier: a member's own probability is not an answer; the record's decisions "
        "rest on the members' mean (the glaucoma probability) and their spread (`uncertain`), both held to the "
        "precision's tolerance, while each member's drift stays shown (`member_max_diff`)."
        if judged else ""
    )  # fmt: skip
    return ("## Parity: the engines against PyTorch (held-out phantoms)\n\n"
            f"`fundusrt export --check`: {verdict}.{note}\n\n" + format_table(rows))  # fmt: skip


def _screening(out: Path) -> str:
    screen = out / "screen"
    rows = list(csv.DictReader(open(screen / "results.csv"))) if (screen / "results.csv").exists() else []
    if not rows:
        return "## Screening\n\nNot run."
    ok = [r for r in rows if r["ok"] == "True"]
    flags = Counter(f for r in rows for f in r["flags"].split(";") if f)
    positive = sum(r["glaucoma"] == "True" for r in ok)
    referred, uncertain = sum(r["refer"] == "True" for r in ok), sum(r["uncertain"] == "True" for r in ok)
    ungradable = sum(r["gradable"] == "False" for r in ok)
    lines = [
        "## Screening (`fundusrt screen`)", "",
        f"{len(rows)} images, {len(ok)} processed, {len(rows) - len(ok)} failed; {positive} called glaucoma "
        f"(probability ≥ 0.5), {uncertain} uncertain (the members disagree), {ungradable} ungradable: "
        f"{referred} referred to a grader. Flags: {dict(flags) or 'none'}.", "",
        "The graders' review page: [screen/report.html](screen/report.html) (`fundusrt report demo-out/screen`).",
        "",
    ]  # fmt: skip
    shown = [[Path(r["path"]).name, r["refer"], r["glaucoma_probability"], r["uncertainty"], r["quality_score"],
              r["vcdr"], f"{r['disc_x']}, {r['disc_y']}", f"{r['fovea_x']}, {r['fovea_y']}", r["flags"]]
             for r in rows[:8] + [r for r in rows if "retina" in r["path"]]]  # fmt: skip
    headers = ["image", "refer", "glaucoma probability", "members' spread", "quality", "vCDR", "disc centre", "fovea",
               "flags"]  # fmt: skip
    lines.append(markdown_table(headers, shown))
    overlays = sorted((screen / "overlays").rglob("*.jpg"))
    chosen = [p for p in overlays if p.stem == "retina"] + [p for p in overlays if p.stem != "retina"][:3]
    lines += ["", "Overlays (disc ellipse green, cup blue, disc centre +, fovea x):", ""]
    lines += [f'<img src="{p.relative_to(out).as_posix()}" width="320">' for p in chosen]
    return "\n".join(lines)


def _evaluation(out: Path) -> str:
    reports = _json(out / "evaluation" / "evaluation.json")
    if not reports:
        return "## REFUGE metrics\n\nNot run."
    return ("## REFUGE metrics through the runtime (held-out phantoms), beside REFUGE's published baseline\n\n"
            "The baseline column is M-Net on REFUGE's real validation images (Orlando et al. 2020): a different "
            "task difficulty, shown for scale only. One column per backend and precision; each after the first "
            "also says how far its answers are from the first's (ONNX Runtime FP32), image by image.\n\n"
            + evaluation_table(reports))  # fmt: skip


def _benchmark(out: Path) -> str:
    md = out / "bench" / "bench.md"
    if not md.exists():
        return "## Benchmark\n\nNot run."
    body = md.read_text().replace("# fundusrt bench", "## Benchmark (`fundusrt bench`)", 1)
    body = body.replace("\n## ", "\n### ").replace("### Benchmark", "## Benchmark", 1)
    pictures = [f"![{p.stem}](bench/{p.name})" for p in sorted((out / "bench").glob("*.png"))]
    return body + "\n" + "\n".join(pictures)


def _html(out: Path, text: str) -> None:
    try:
        import markdown
    except ImportError:
        return
    body = markdown.markdown(text, extensions=["tables"])
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px}"
             "img{max-width:100%}")  # fmt: skip
    (out / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>fundusrt demo</title><style>{style}</style>"
        f"</head><body>{body}</body></html>\n"
    )


def _json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None
