"""The same network and step through mmchh: the paper's config
(``configs/ceph/unet_r34_onehot.py``) built as MMPose's
``TopdownPoseEstimator`` with our backbone, U-Net neck, ``SoftmaxHeatmapHead``
(``SoftmaxNLLLoss`` on sparse targets), ``PoseDataPreprocessor`` and
MMEngine's optimizer wrapper, driven by ``model.train_step`` /
``model.test_step`` as MMEngine's runner does."""
import os.path as osp
import sys

import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'ceph', 'unet_r34_onehot.py')
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def load_config(input_size=None, with_cp=False):
    """The paper's config, offline (no ImageNet weights); ``input_size``
    (W, H) overrides 640 x 800 (the --quick mode's tiny inputs);
    ``with_cp=True`` is the memory mode (activation checkpointing in the
    backbone and the U-Net decoder)."""
    import mmchh  # noqa: F401  (registers our modules, patches mmcv-lite)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmpose')
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.init_cfg = None
    if with_cp:
        for part in (cfg.model.backbone, cfg.model.neck.backbone,
                     cfg.model.neck):
            part.with_cp = True
    if input_size is not None:
        size = tuple(input_size)
        cfg.model.head.decoder.input_size = size
        cfg.model.head.decoder.heatmap_size = size
        # every pipeline at that size (training's and the test split's,
        # which tools/infer.py runs), targets encoded on the new grid
        for pipeline in (cfg.train_pipeline,
                         cfg.train_dataloader.dataset.pipeline,
                         cfg.test_dataloader.dataset.pipeline):
            for t in pipeline:
                if t['type'] == 'TopdownAffine':
                    t['input_size'] = size
                if t['type'] in ('GenerateTarget',
                                 'GenerateTargetIfAnnotated'):
                    t['encoder'] = dict(cfg.model.head.decoder)
    return cfg


def build_ours(cfg, device='cpu', amp=False):
    """(model, optim_wrapper) from the config, as the runner builds them
    (``amp``: the optimizer wrapper of ``--amp``)."""
    from mmengine.optim import build_optim_wrapper
    from mmpose.registry import MODELS
    model = MODELS.build(cfg.model).to(device)
    model.train()
    optim_cfg = dict(cfg.optim_wrapper)
    if amp:
        # what tools/train.py --amp selects: fp16 with loss scaling on
        # CUDA, bf16 autocast on a CPU
        optim_cfg.update(type='AmpOptimWrapper', loss_scale='dynamic') \
            if device != 'cpu' else optim_cfg.update(
                type='CpuAmpOptimWrapper')
    return model, build_optim_wrapper(model, optim_cfg)


def copy_weights(reference, model) -> None:
    """Loads the reference's weights into ours, every tensor exactly once."""
    from mmchh.testing.smp_unet import smp_to_ours_key
    from mmchh.models.heads.calibration_buffers import \
        CALIBRATION_STATE_NAMES
    mapped = {
        smp_to_ours_key(k): v
        for k, v in reference.state_dict().items()
    }
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    # the calibration buffers keep their "uncalibrated" fill
    missing = set(missing) - {'head.' + n for n in CALIBRATION_STATE_NAMES}
    if missing or unexpected:
        raise RuntimeError(f'weight copy: missing {sorted(missing)}, '
                           f'unexpected {sorted(unexpected)}')


def train_batch(images: torch.Tensor, index: torch.Tensor) -> dict:
    """What the training dataloader + ``pseudo_collate`` hand to
    ``train_step``: uint8 (3, H, W) inputs and samples carrying the sparse
    targets (one flat pixel index per landmark)."""
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample
    h, w = images.shape[-2:]
    samples = []
    for i in range(len(images)):
        s = PoseDataSample(metainfo=dict(
            input_size=(w, h), input_center=np.array([w / 2, h / 2]),
            input_scale=np.array([w, h], dtype=np.float32)))
        s.gt_instance_labels = InstanceData(
            heatmap_indices=index[i:i + 1].long(),
            keypoint_weights=torch.ones(1, index.shape[1]))
        samples.append(s)
    return dict(inputs=list(images), data_samples=samples)


def test_batch(images: torch.Tensor, spacing=(0.1, 0.1)) -> dict:
    """What ``mmchh.apis.predict_landmarks`` hands to ``test_step`` for
    whole 640 x 800 images with a pixel spacing (so the head computes ERE in
    input pixels and in mm, as in inference with spacing)."""
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample
    h, w = images.shape[-2:]
    samples = []
    for i in range(len(images)):
        s = PoseDataSample(metainfo=dict(
            id=i, img_id=i, img_shape=(h, w), ori_shape=(h, w),
            input_size=(w, h), input_center=np.array([w / 2, h / 2],
                                                     dtype=np.float32),
            input_scale=np.array([w, h], dtype=np.float32),
            spacing=np.asarray(spacing, dtype=np.float32),
            flip_indices=list(range(19))))
        # whole-image box, as the val pipeline packs it (no keypoints)
        s.gt_instances = InstanceData(
            bboxes=np.array([[0, 0, w, h]], dtype=np.float32),
            bbox_scores=np.ones(1, dtype=np.float32))
        samples.append(s)
    return dict(inputs=list(images), data_samples=samples)


def train_step(model, optim_wrapper, data: dict) -> torch.Tensor:
    """One step exactly as MMEngine's ``IterBasedTrainLoop`` runs it."""
    log_vars = model.train_step(data, optim_wrapper)
    return log_vars['loss_kpt']


def predict(model, data: dict):
    """Inference as MMEngine's test loop and ``predict_landmarks`` run it:
    preprocessor, forward, temperature-scaled softmax, decode (mode,
    probability, ERE in input pixels and in mm), results to the host."""
    with torch.no_grad():
        return model.test_step(data)
