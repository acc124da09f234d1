"""The paper's training step in bare PyTorch, without MMPose.

Written from the description of the paper's official code (DESIGN.md §3),
not copied from it: ``segmentation_models_pytorch.Unet('resnet34',
decoder_channels=(256, 128, 64, 32, 32), classes=19)`` at 640 x 800, a dense
float one-hot target map per landmark, the 2D softmax as ``exp(x) /
sum(exp(x))`` (no max-subtraction) and the NLL in float64, Adam.

The only deliberate difference from the paper is ``in_channels=3`` (the paper
uses 1): mmchh loads grey X-rays as 3 identical channels for the ImageNet
stem, and the benchmark copies the same weights into both networks so that
they compute the same function on the same input.

This module must not import MMPose, MMEngine or mmchh: the reference's peak
memory is measured in a process that has only torch and smp loaded.
"""
import torch
from torch import Tensor, nn

DECODER_CHANNELS = (256, 128, 64, 32, 32)
# ImageNet mean / std in RGB order, on the 0..255 scale (as mmchh's config)
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


def build_reference(num_keypoints: int = 19, depth: int = 34) -> nn.Module:
    """The paper's network, randomly initialised (no download)."""
    import segmentation_models_pytorch as smp
    return smp.Unet(
        f'resnet{depth}',
        encoder_weights=None,
        decoder_channels=DECODER_CHANNELS,
        in_channels=3,
        classes=num_keypoints)


def preprocess(images: Tensor, device) -> Tensor:
    """(B, 3, H, W) uint8 BGR -> normalised float RGB on ``device``."""
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    x = images.to(device, non_blocking=True).float()[:, [2, 1, 0]]
    return (x - mean) / std


def dense_one_hot(index: Tensor, height: int, width: int) -> Tensor:
    """(B, K) flat pixel indices -> (B, K, H, W) float32 one-hot maps, the
    target the paper's data loader builds."""
    b, k = index.shape
    target = torch.zeros(b, k, height * width)
    target.scatter_(-1, index.long().unsqueeze(-1), 1.0)
    return target.view(b, k, height, width)


def two_d_softmax(logits: Tensor) -> Tensor:
    """``exp(x) / sum(exp(x))`` over each map, as the paper's code."""
    exp = torch.exp(logits)
    return exp / exp.sum(dim=(2, 3), keepdim=True)


def nll_across_batch(probs: Tensor, target: Tensor) -> Tensor:
    """Mean over maps of ``-sum(target * log p)``, in float64."""
    nll = -target * torch.log(probs.double())
    return nll.sum(dim=(2, 3)).mean()


def train_step(model: nn.Module, optimizer, images: Tensor, target: Tensor,
               device) -> Tensor:
    """One training step: preprocess, forward, loss, backward, Adam step."""
    x = preprocess(images, device)
    target = target.to(device, non_blocking=True)
    logits = model(x)
    loss = nll_across_batch(two_d_softmax(logits), target)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.detach()


def forward(model: nn.Module, images: Tensor, device) -> Tensor:
    """The bare inference forward: preprocess and logits, nothing else."""
    with torch.no_grad():
        return model(preprocess(images, device))
