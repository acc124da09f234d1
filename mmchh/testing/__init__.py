from .tiny_marks import TINY_KEYPOINT_NAMES, tiny_runner_cfg, write_tiny_coco

__all__ = ['TINY_KEYPOINT_NAMES', 'tiny_runner_cfg', 'write_tiny_coco']
