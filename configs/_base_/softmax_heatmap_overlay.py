# The softmax-head changes that turn an MMPose top-down heatmap config into
# a calibrated, uncertainty-aware one (docs/own_config.md). An overlay lists
# this file after its MMPose base and applies them to the base's codec, head
# and train pipeline; the names below exist in no MMPose config, so the two
# bases never share a key.
custom_imports = dict(imports=['mmchh'], allow_failed_imports=False)

softmax_overlay = dict(
    # flat target indices at the base codec's sizes; the position is refined
    # inside the mode's 3x3 window (probabilities, scores and ERE are the
    # unrefined maps')
    codec=dict(type='SoftmaxHeatmap', subpixel_radius=1),
    # 2D softmax + NLL; predicts calibrated mode probabilities and ERE
    head=dict(
        type='SoftmaxHeatmapHead',
        loss=dict(type='SoftmaxNLLLoss', _delete_=True)),
    # the flipped probability maps are averaged with the plain ones; the
    # SoftmaxHeatmap grid mirrors exactly, so no shift
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=False),
    # the ground truth encoded on the model's grid in the val/test pipeline
    # (inserted before PackPoseInputs, with the head's codec as encoder):
    # the head scores its predictions against it (NLL, mode hit) and
    # calibration fits on it; images without keypoints pass through
    target=dict(type='GenerateTargetIfAnnotated'),
    # NLL, ECE, ERE-error correlation, AUC, flags and conformal coverage,
    # added to the base's evaluators; without a spacing (COCO, hands) ERE
    # and errors are in original-image pixels and "erroneous" is a radial
    # error above erroneous_px
    metric=dict(type='UncertaintyMetric', erroneous_px=10.0))
