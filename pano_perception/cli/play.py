"""``pano-perception play BAG``: publish a bag into the live graph at the recorded rate, with /clock."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("play", help="publish a rosbag2 into ROS 2 with /clock (pip-only 'ros2 bag "
                                                "play')", description=__doc__)
    parser.add_argument("bag")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    parser.add_argument("--topics", nargs="*", default=None, help="only these topics")
    parser.add_argument("--loop", action="store_true")
    parser.add_argument("--wait-for-subscribers", type=float, default=2.0,
                        help="seconds to wait for a subscriber before starting")
    return parser


def run(args) -> int:
    from ..ros.bag_player import play

    count = play(args.bag, rate=args.rate, topics=args.topics, loop=args.loop,
                 wait_for_subscribers=args.wait_for_subscribers)
    print(f"published {count} messages from {args.bag}")
    return 0
