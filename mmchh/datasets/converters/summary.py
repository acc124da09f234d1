# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""What a conversion reports: counts per split, annotators, what it skipped,
and the printed form shared by every converter."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ['SplitSummary']


@dataclass
class SplitSummary:
    """What a conversion wrote (and skipped); each converter's summary
    derives from it and prints itself with :meth:`head_lines` first.

    ``notes`` maps a split to why it is empty or incomplete (e.g. test2:
    ``RawImage/Test2Data not found``); ``written`` lists the split JSONs
    written.
    """
    out_dir: str
    images_per_split: Dict[str, int]
    annotators: List[str]
    gt: str
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    resize: Optional[Tuple[int, int]] = None
    notes: Dict[str, str] = field(default_factory=dict)
    written: List[str] = field(default_factory=list)

    def head_lines(self, tool: str, splits: Sequence[str],
                   num_landmarks: int) -> List[str]:
        """The summary's first lines: images per split (with notes),
        landmarks, annotators, ground truth and the resize."""
        lines = [f'{tool}: wrote {self.out_dir}']
        for split in splits:
            line = (f'  {split:6s} {self.images_per_split[split]:4d} '
                    'images')
            if split in self.notes:
                line += f' ({self.notes[split]})'
            lines.append(line)
        lines.append(f'  landmarks {num_landmarks}; annotators '
                     f'{", ".join(self.annotators)}; ground truth {self.gt}')
        if self.resize:
            lines.append(f'  images resized to {self.resize[0]}x'
                         f'{self.resize[1]} (padded right/bottom)')
        return lines
