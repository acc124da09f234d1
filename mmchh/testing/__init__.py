from .conformal_maps import (blob_maps, compare_scores, draw_targets,
                             format_score_rows, mode_errors)
from .dense_nll import dense_softmax_nll
from .folder_digest import folder_digest
from .nan_map_checkpoint import write_nan_map_checkpoint
from .smp_unet import smp_to_ours_key
from .tiny_head import TINY_CODEC, build_tiny_head, tiny_feats
from .tiny_marks import TINY_KEYPOINT_NAMES, tiny_runner_cfg, write_tiny_coco
from .tool_loader import TOOLS_DIR, load_tool, run_tool_in_process

__all__ = [
    'TINY_CODEC', 'TINY_KEYPOINT_NAMES', 'TOOLS_DIR', 'blob_maps',
    'build_tiny_head', 'compare_scores',
    'dense_softmax_nll', 'draw_targets', 'folder_digest', 'format_score_rows',
    'load_tool', 'mode_errors', 'run_tool_in_process', 'smp_to_ours_key',
    'tiny_feats', 'tiny_runner_cfg', 'write_nan_map_checkpoint',
    'write_tiny_coco'
]
