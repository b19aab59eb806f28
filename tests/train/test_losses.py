import torch

from fundusrt.train.losses import bi_distance_loss, classification_loss, segmentation_loss, soft_dice_loss


def test_soft_dice_is_zero_for_a_confident_right_answer_and_one_for_a_wrong_one():
    target = torch.zeros(1, 2, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    right = (target * 2 - 1) * 50  # logits
    assert soft_dice_loss(right, target) < 1e-3
    assert soft_dice_loss(-right, target) > 0.9


def test_bce_term_is_optional():
    target = torch.zeros(1, 2, 8, 8)
    logits = torch.zeros(1, 2, 8, 8)
    assert segmentation_loss(logits, target, 1.0) > segmentation_loss(logits, target, 0.0)


def test_mse_on_the_sigmoid_and_cross_entropy():
    target = torch.full((1, 1, 4, 4), 0.5)
    assert bi_distance_loss(torch.zeros(1, 1, 4, 4), target) == 0
    assert classification_loss(torch.tensor([[10.0, -10.0]]), torch.tensor([0])) < 1e-6
