from .bootstrap import (BootstrapInterval, BootstrapOptions,
                        bootstrap_counts, bootstrap_indices, bootstrap_mean,
                        image_bootstrap, paired_bootstrap,
                        paired_bootstrap_mean, resample_counts)
from .calibration_metrics import (binned_correlation,
                                  expected_calibration_error,
                                  good_erroneous_table, pearson_spearman,
                                  roc_auc, threshold_at_tpr)
from .cephalometric import (CEPH_CLASS_NAMES, CEPH_MEASUREMENT_NAMES,
                            CEPH_MEASUREMENT_UNITS, CEPH_THRESHOLDS,
                            ceph_labels_tuple, ceph_measurements,
                            classify_ceph, classify_ceph_measurements,
                            num_ceph_classes)
from .conformal import (conformal_coverage, conformal_min_maps,
                        conformal_rank, conformal_thresholds, disc_regions,
                        region_summary)
from .measurement_uncertainty import (interval_coverage, interval_scores,
                                      sample_ceph_measurements,
                                      sample_center_spread,
                                      sample_heatmap_positions,
                                      sample_region_positions,
                                      scaled_intervals,
                                      summarize_measurement_samples,
                                      truncate_heatmaps)
from .radial_error import radial_errors_mm
from .bootstrap_weighted import (paired_weighted_bootstrap,
                                 weighted_bootstrap)
from .run_comparison import RUN_STATISTICS, align_runs, compare_runs
from .weighted_statistics import (weighted_ece, weighted_mean,
                                  weighted_pearson, weighted_reliability_bins,
                                  weighted_roc_auc, weighted_spearman)

__all__ = [
    'BootstrapInterval', 'BootstrapOptions', 'bootstrap_counts',
    'bootstrap_indices', 'bootstrap_mean',
    'image_bootstrap', 'paired_bootstrap', 'paired_bootstrap_mean',
    'resample_counts',
    'CEPH_CLASS_NAMES', 'CEPH_MEASUREMENT_NAMES', 'CEPH_MEASUREMENT_UNITS',
    'CEPH_THRESHOLDS', 'ceph_labels_tuple', 'ceph_measurements',
    'classify_ceph', 'classify_ceph_measurements', 'conformal_coverage',
    'conformal_min_maps', 'conformal_rank', 'conformal_thresholds',
    'disc_regions', 'interval_coverage', 'interval_scores',
    'region_summary', 'sample_center_spread', 'scaled_intervals',
    'truncate_heatmaps',
    'num_ceph_classes', 'sample_ceph_measurements',
    'sample_heatmap_positions', 'sample_region_positions',
    'summarize_measurement_samples',
    'binned_correlation', 'expected_calibration_error',
    'good_erroneous_table', 'pearson_spearman', 'radial_errors_mm',
    'roc_auc', 'threshold_at_tpr', 'paired_weighted_bootstrap',
    'RUN_STATISTICS', 'align_runs', 'compare_runs', 'weighted_bootstrap',
    'weighted_ece',
    'weighted_mean', 'weighted_pearson', 'weighted_reliability_bins',
    'weighted_roc_auc', 'weighted_spearman'
]
