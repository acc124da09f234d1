# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Run the DICOM/MetaImage loop of docs/own_data.md and record its output.

Usage: python docs/examples/run_own_data_loop.py [--out DIR]

Runs :data:`COMMANDS` one after the other from the repository root (the
``python`` of each with this interpreter), after removing what an earlier
run of the loop wrote (:data:`OUTPUTS`, only those). Writes into ``--out``
(default ``work_dirs/own_xrays_loop``):

- ``record.json``: the machine (CPU model from ``lscpu``, cores, load
  average), the commit, and per command its duration, exit status and
  output (stdout and stderr together; of a long output its first and last
  lines, with the number of lines);
- copies of the small files the loop writes (:data:`COPIES`).

docs/own_data.md shows lines of ``docs/results/own_data_loop/record.json``,
a copy of this folder (``tests/test_reliability/test_own_data_doc.py``
checks that every line it shows is one recorded). Stops at the first
command that fails.
"""
import argparse
import datetime
import json
import os
import os.path as osp
import platform
import shlex
import shutil
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: The loop, exactly as docs/own_data.md shows it.
COMMANDS = (
    'python docs/examples/make_own_xrays.py data/own_xrays',
    'python tools/convert_landmarks.py data/own_xrays_coco '
    '--images data/own_xrays/xrays/ --keypoints-file data/own_xrays/names.txt '
    '--csv data/own_xrays/landmarks.csv --num-val 3 --num-calib 12',
    'python -c \'import json; [print(i["original_file"], i["spacing"], '
    'i["spacing_source"]) for i in '
    'json.load(open("data/own_xrays_coco/test.json"))["images"]]\'',
    'python tools/landmark_config.py data/own_xrays_coco '
    'work_dirs/own_xrays.py --input-size 128 160 --epochs 20',
    'python tools/train.py work_dirs/own_xrays.py '
    '--cfg-options model.backbone.init_cfg=None',
    'python tools/test.py work_dirs/own_xrays.py '
    'work_dirs/own_xrays/calibrated.pth '
    '--out work_dirs/own_xrays/test_metrics.json',
    'python tools/infer.py data/own_xrays/new_xrays/ '
    '--checkpoint work_dirs/own_xrays/calibrated.pth '
    '--out-dir work_dirs/own_xrays/preds --format labelme',
    'python -c \'import csv; [print(r["image"], r["landmark"], r["ere_mm"], '
    'r["flagged"], r["spacing_x"], r["spacing_y"], r["spacing_source"]) '
    'for r in csv.DictReader('
    'open("work_dirs/own_xrays/preds/landmarks.csv"))]\'',
    'python docs/examples/labelme_review_copies.py '
    'work_dirs/own_xrays/preds/labelme data/own_xrays/review',
    'python docs/examples/simulate_review.py data/own_xrays/review '
    'data/own_xrays/new_xrays_dr_a.csv',
    'python tools/convert_landmarks.py data/own_xrays_reviewed '
    '--images data/own_xrays/new_xrays/ '
    '--keypoints-file data/own_xrays_coco/metainfo.py '
    '--labelme reviewed=data/own_xrays/review/ --test-fraction 1',
    'python tools/test.py work_dirs/own_xrays.py '
    'work_dirs/own_xrays/calibrated.pth '
    '--cfg-options data_root=data/own_xrays_reviewed/ '
    '--out work_dirs/own_xrays/reviewed_metrics.json',
)

#: What the loop writes (removed before a run).
OUTPUTS = ('data/own_xrays', 'data/own_xrays_coco', 'data/own_xrays_reviewed',
           'work_dirs/own_xrays', 'work_dirs/own_xrays.py')

#: Files the loop writes, copied into the output folder (under these names).
COPIES = (
    ('data/own_xrays_coco/conversion_report.json', 'conversion_report.json'),
    ('work_dirs/own_xrays/calibration.json', 'calibration.json'),
    ('work_dirs/own_xrays/test_metrics.json', 'test_metrics.json'),
    ('data/own_xrays/review/901.json', 'reviewed_901.json'),
    ('data/own_xrays_reviewed/conversion_report.json',
     'reviewed_conversion_report.json'),
    ('work_dirs/own_xrays/reviewed_metrics.json', 'reviewed_metrics.json'),
)

#: Output lines kept from the start and the end of a longer output.
HEAD_LINES, TAIL_LINES = 40, 80


def lscpu():
    """``lscpu``'s fields as a dict (empty where it is missing)."""
    try:
        out = subprocess.run(['lscpu'],
                             capture_output=True,
                             text=True,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {
        k.strip(): v.strip()
        for k, _, v in (line.partition(':') for line in out.splitlines()) if v
    }


def machine():
    import torch
    cpu = lscpu()
    return dict(cpu=cpu.get('Model name', platform.processor()),
                cores=os.cpu_count(),
                threads_per_core=cpu.get('Thread(s) per core'),
                system=f'{platform.system()} {platform.machine()}',
                python=platform.python_version(),
                torch=torch.__version__,
                torch_threads=torch.get_num_threads(),
                gpu=torch.cuda.is_available())


def git(*args):
    """A git command's output in the repository, None where git fails."""
    try:
        return subprocess.run(['git', *args],
                              cwd=REPO,
                              capture_output=True,
                              text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def kept_lines(text):
    lines = text.splitlines()
    if len(lines) <= HEAD_LINES + TAIL_LINES:
        return lines, len(lines)
    return lines[:HEAD_LINES] + ['...'] + lines[-TAIL_LINES:], len(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out',
                        default=osp.join('work_dirs', 'own_xrays_loop'),
                        help='the folder for record.json and the copies')
    args = parser.parse_args(argv)
    out = osp.abspath(args.out)
    os.chdir(REPO)
    for rel in OUTPUTS:
        if osp.isdir(rel):
            shutil.rmtree(rel)
        elif osp.exists(rel):
            os.remove(rel)
    record = dict(
        script='python docs/examples/run_own_data_loop.py',
        date_utc=datetime.datetime.now(
            datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        commit=git('rev-parse', '--short', 'HEAD'),
        # tracked files that differ from the commit when the loop started
        modified_files=(git('status', '--porcelain', '--untracked-files=no')
                        or '').splitlines(),
        machine=machine(),
        load_average_start=round(os.getloadavg()[0], 2),
        steps=[])
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    start = time.perf_counter()
    for command in COMMANDS:
        argv_ = shlex.split(command)
        argv_[0] = sys.executable
        print(f'$ {command}', flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(argv_,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT,
                              text=True,
                              env=env)
        duration = time.perf_counter() - t0
        sys.stdout.write(proc.stdout)
        lines, total = kept_lines(proc.stdout)
        record['steps'].append(
            dict(command=command,
                 duration_s=round(duration, 1),
                 returncode=proc.returncode,
                 output_lines=total,
                 output=lines))
        if proc.returncode:
            break
    record['duration_s'] = round(time.perf_counter() - start, 1)
    record['load_average_end'] = round(os.getloadavg()[0], 2)
    os.makedirs(out, exist_ok=True)
    record['copies'] = {}
    for src, name in COPIES:
        if osp.isfile(src):
            shutil.copyfile(src, osp.join(out, name))
            record['copies'][name] = src
    with open(osp.join(out, 'record.json'), 'w', encoding='utf-8') as f:
        json.dump(record, f, indent=1, ensure_ascii=False)
        f.write('\n')
    failed = [s for s in record['steps'] if s['returncode']]
    print(f'run_own_data_loop: {len(record["steps"])} commands in '
          f'{record["duration_s"]:.0f} s' +
          (f', FAILED: {failed[0]["command"]}' if failed else '') +
          f'; record in {osp.relpath(out)}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
