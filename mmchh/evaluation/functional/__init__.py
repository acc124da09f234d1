from .calibration_metrics import (binned_correlation,
                                  expected_calibration_error,
                                  good_erroneous_table, pearson_spearman,
                                  roc_auc, threshold_at_tpr)
from .cephalometric import (CEPH_CLASS_NAMES, CEPH_MEASUREMENT_NAMES,
                            CEPH_MEASUREMENT_UNITS, CEPH_THRESHOLDS,
                            ceph_labels_tuple, ceph_measurements,
                            classify_ceph, classify_ceph_measurements,
                            num_ceph_classes)
from .heatmap_grid import (heatmap_cell, heatmap_to_input, input_to_heatmap,
                           refine_subpixel)
from .measurement_uncertainty import (interval_coverage,
                                      sample_ceph_measurements,
                                      sample_heatmap_positions,
                                      summarize_measurement_samples)
from .radial_error import radial_errors_mm
from .uncertainty import (expected_radial_error, heatmap_mode, log_softmax_2d,
                          nll_at_index, softmax_2d)

__all__ = [
    'CEPH_CLASS_NAMES', 'CEPH_MEASUREMENT_NAMES', 'CEPH_MEASUREMENT_UNITS',
    'CEPH_THRESHOLDS', 'ceph_labels_tuple', 'ceph_measurements',
    'classify_ceph', 'classify_ceph_measurements', 'interval_coverage',
    'num_ceph_classes', 'sample_ceph_measurements',
    'sample_heatmap_positions', 'summarize_measurement_samples',
    'binned_correlation', 'expected_calibration_error',
    'expected_radial_error', 'good_erroneous_table', 'heatmap_cell',
    'heatmap_mode', 'heatmap_to_input', 'input_to_heatmap', 'refine_subpixel',
    'log_softmax_2d', 'nll_at_index', 'pearson_spearman', 'radial_errors_mm',
    'roc_auc', 'softmax_2d', 'threshold_at_tpr'
]
