# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Reading checkpoints safely, checking their weights, fingerprinting them.

Every entry point that takes a checkpoint (the API, ``tools/infer.py``,
``test.py``, ``calibrate.py``, ``measure.py``, ``train.py``'s
``load_from``/``--resume``) goes through :func:`load_checkpoint_file`, so a
truncated, empty, malicious or foreign file ends in one
:class:`CheckpointError` line naming the file and the reason -- never in a
traceback, and never with advice to turn ``weights_only`` off.

:func:`check_finite_state` refuses weights holding NaN/inf (naming the
tensor): a network with a non-finite weight answers (0, 0) with ERE 0 for
every landmark, the most confident answer there is.

:func:`weights_fingerprint` is a SHA-256 over every tensor of a state dict
except the calibration state itself; calibration records it, and a consumer
whose weights hash differently knows the calibration was fitted for other
weights. Which tensors are calibration state, and the seal binding the
fingerprint to their values, belong to the head that owns them
(:mod:`mmchh.models.heads.calibration_buffers`).
"""
import hashlib
import os.path as osp
import pickle
from typing import Any, Dict, Iterable, Mapping, Optional

import torch

from .errors import InputError

__all__ = [
    'CheckpointError', 'check_finite_state', 'checkpoint_state_dict',
    'hash_tensor', 'load_checkpoint_file', 'weights_fingerprint'
]

class CheckpointError(InputError):
    """A checkpoint file that cannot be used; the message names the file.

    Args:
        path (str | None): The checkpoint file.
        reason (str): Why it cannot be used, in words.
    """

    def __init__(self, path: Optional[str], reason: str):
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f'checkpoint {self.path or "<memory>"}: {reason}')


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_checkpoint_file(path: str, map_location: Any = 'cpu') -> Any:
    """Loads a checkpoint with ``weights_only=True`` and plain errors.

    Args:
        path (str): The file.
        map_location: As for ``torch.load``.

    Returns:
        The loaded object (normally a dict with ``state_dict`` and ``meta``).

    Raises:
        CheckpointError: missing, empty, truncated/not a torch file, or
            holding objects other than weights (a possibly malicious file);
            the message names the file.
    """
    import mmchh.utils.compat as compat
    compat.allow_checkpoint_globals()
    path = str(path)
    if not osp.exists(path):
        raise CheckpointError(path, 'no such file')
    if not osp.isfile(path):
        raise CheckpointError(path, 'not a file')
    if osp.getsize(path) == 0:
        raise CheckpointError(path, 'empty file (0 bytes)')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message suggests turning weights_only off; we never do that
        # keep torch's diagnosis (which global, which operand), drop its
        # preamble and its advice
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = next(
            (ln for ln in lines if not ln.startswith(
                ('Weights only load failed', 'Check the documentation',
                 'Please file an issue'))
             and 'weights_only' not in ln), 'an unsupported object')
        raise CheckpointError(
            path, 'refused: it holds objects that are not plain weights '
            f'({detail.rstrip(".")}). mmchh loads checkpoints with '
            'weights_only=True only; use a checkpoint written by MMEngine '
            'or mmchh') from e
    except Exception as e:  # noqa: B902  (any failure to parse the file)
        raise CheckpointError(
            path, 'not a readable PyTorch checkpoint (truncated or another '
            f'kind of file): {_first_line(e)}') from e


def checkpoint_state_dict(ckpt: Any,
                          path: Optional[str] = None
                          ) -> Dict[str, torch.Tensor]:
    """The state dict inside an MMEngine/plain checkpoint, ``module.``-free.

    Raises:
        CheckpointError: if there is no dict of tensors in it.
    """
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, 'holds no state dict of tensors (not a '
                              'model checkpoint)')
    # DDP-wrapped saves prefix every key with "module."
    return {(k[7:] if k.startswith('module.') else k): v
            for k, v in state.items()}


def check_finite_state(state: Mapping[str, torch.Tensor],
                       path: Optional[str] = None,
                       nan_allowed: Iterable[str] = ()) -> None:
    """Raises unless every floating tensor of ``state`` is finite.

    Tensors whose last name part is in ``nan_allowed`` may be NaN ("not
    fitted") but not infinite: the head's calibration buffers
    (:data:`~mmchh.models.heads.calibration_buffers.UNSET_AS_NAN_STATE_NAMES`,
    which :func:`~mmchh.models.heads.calibration_buffers.check_finite_weights`
    passes).

    Raises:
        CheckpointError: naming the first offending tensor and how many of
            its values are NaN or infinite.
    """
    nan_allowed = frozenset(nan_allowed)
    for name, value in state.items():
        if not isinstance(value, torch.Tensor) or not (
                value.is_floating_point() or value.is_complex()):
            continue
        bad = ~torch.isfinite(value)
        if name.rsplit('.', 1)[-1] in nan_allowed:
            bad = torch.isinf(value)
        if bool(bad.any()):
            n_nan = int(torch.isnan(value).sum())
            n_inf = int(torch.isinf(value).sum())
            raise CheckpointError(
                path, f'tensor {name} {tuple(value.shape)} holds {n_nan} '
                f'NaN and {n_inf} infinite value(s); the weights are broken '
                '(a diverged training run?) and would give meaningless '
                'predictions')


def weights_fingerprint(state: Mapping[str, torch.Tensor],
                        exclude: Iterable[str]) -> str:
    """SHA-256 (hex) of every tensor of ``state`` but those named in
    ``exclude`` (last name part; the head's calibration buffers:
    :func:`~mmchh.models.heads.calibration_buffers.calibration_weights_fingerprint`).

    Names (``module.`` stripped), dtypes, shapes and bytes all count, in
    sorted name order, so the same weights give the same fingerprint
    whether they come from a checkpoint file or from ``model.state_dict()``
    on any device.
    """
    exclude = tuple(exclude)
    digest = hashlib.sha256()
    for name in sorted(state):
        key = name[7:] if name.startswith('module.') else name
        if key.rsplit('.', 1)[-1] in exclude:
            continue
        value = state[name]
        if not isinstance(value, torch.Tensor):
            continue
        hash_tensor(digest, key, value)
    return digest.hexdigest()


def hash_tensor(digest, name: str, value: torch.Tensor) -> None:
    """Feeds ``name|dtype|shape|`` and the raw bytes of ``value`` (on the
    CPU) to ``digest``: one tensor of a fingerprint or a seal."""
    tensor = value.detach().to('cpu').contiguous()
    digest.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
    digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
                  if tensor.numel() else b'')
