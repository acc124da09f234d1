# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What a folder holds, byte for byte: for tests that an output folder is
left exactly as it was (atomic conversions, refused runs)."""
import hashlib
import os
import os.path as osp
from typing import Dict


def folder_digest(folder: str) -> Dict[str, str]:
    """Relative path -> SHA-256 (hex) of every file under ``folder``."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, folder)] = hashlib.sha256(
                    f.read()).hexdigest()
    return out
