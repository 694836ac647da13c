#!/usr/bin/env python3
"""Loads MaskPilot's TensorBoard event files with tensorboard's own EventAccumulator and prints the scalars.

Optional manual check of Sources/Training/TensorBoard.swift (CI does not depend on it):

    pip install tensorboard
    MASKPILOT_TB_SAMPLE=/tmp/tb swift test --filter TensorBoardTests/sampleRunFileIsFramedExactly
    python3 tools/check_tensorboard.py /tmp/tb          # or OUTPUT/tb of a run, or one events file

Exit status 0 when at least one scalar was read, 1 otherwise, 2 when tensorboard is not installed.
"""
import sys


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 1
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        print("tensorboard is not installed (pip install tensorboard)", file=sys.stderr)
        return 2
    acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})   # 0: keep every event
    acc.Reload()
    tags = acc.Tags().get("scalars", [])
    count = 0
    for tag in sorted(tags):
        events = acc.Scalars(tag)
        count += len(events)
        values = ", ".join(f"{e.step}:{e.value:.6g}" for e in events)
        print(f"{tag:28s} {len(events):4d} points  {values}")
    print(f"{len(tags)} tags, {count} scalars")
    return 0 if count > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
