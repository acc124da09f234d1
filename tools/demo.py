"""End-to-end demo on generated data: write a dataset, train, test.

Usage: python tools/demo.py [--work-dir DIR] [--epochs N]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--epochs', type=int, default=8)
    return parser.parse_args()


def main():
    args = parse_args()
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmchh.testing import tiny_runner_cfg

    work_dir = osp.abspath(args.work_dir)
    cfg = Config(
        tiny_runner_cfg(
            osp.join(work_dir, 'data'), work_dir, max_epochs=args.epochs))
    cfg.log_level = 'INFO'
    runner = Runner.from_cfg(cfg)
    runner.train()
    cfg.load_from = osp.join(work_dir, f'epoch_{args.epochs}.pth')
    metrics = Runner.from_cfg(cfg).test()
    print(f'demo: trained {args.epochs} epochs; test metrics {metrics}; '
          f'checkpoint {cfg.load_from}')


if __name__ == '__main__':
    main()
