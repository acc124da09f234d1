"""The two sides of ``benchmarks/run.py`` built alike: the same weights, in
train mode, and the same random inputs."""

#: Landmarks of the ISBI 2015 set (the networks' output channels).
NUM_KEYPOINTS = 19


def make_inputs(batch, size, seed=0):
    """uint8 BGR images (B, 3, H, W) and flat target indices (B, K)."""
    import torch
    w, h = size
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, h, w), generator=g,
                           dtype=torch.uint8)
    index = torch.randint(0, h * w, (batch, NUM_KEYPOINTS), generator=g)
    return images, index


def build_pair(size, device):
    """Reference, ours and ours in the memory mode (``with_cp``), all with
    the same weights and in train mode."""
    import torch

    import ours
    import reference
    torch.manual_seed(0)
    ref = reference.build_reference(NUM_KEYPOINTS).to(device).train()
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    cfg = ours.load_config(size)
    model, wrapper = ours.build_ours(cfg, device)
    ours.copy_weights(ref, model)
    model_cp, wrapper_cp = ours.build_ours(
        ours.load_config(size, with_cp=True), device)
    ours.copy_weights(ref, model_cp)
    return ref, ref_opt, cfg, model, wrapper, (model_cp, wrapper_cp)

