"""Reads a swalp TensorBoard event file with TensorBoard's own readers, for
swalp-cli/tests/tensorboard.rs. Prints one JSON object.

    python3 read_events.py scalars FILE
        {"file_version": "brain.Event:2", "accumulator_file_version": 2.0,
         "scalars": {tag: [[step, f32 bits of the value, wall_time], ...]}}
        through EventAccumulator (what `tensorboard --logdir` uses) and, for
        the first event, EventFileLoader.

    python3 read_events.py records FILE
        {"records": n, "loaded": m, "data_loss": null | "message"}
        n records pass TensorBoard's record reader (which checks both CRCs
        of every record) before the end or a DataLossError; m is what
        RawEventFileLoader yields (it stops at a bad record).
"""

import json
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing.event_file_loader import (
    EventFileLoader,
    RawEventFileLoader,
)
from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow


def f32_bits(value):
    return struct.unpack("<I", struct.pack("<f", value))[0]


def scalars(path):
    acc = event_accumulator.EventAccumulator(
        path, size_guidance={event_accumulator.SCALARS: 0}  # keep every point
    )
    acc.Reload()
    first = next(iter(EventFileLoader(path).Load()))
    return {
        "file_version": first.file_version,
        "accumulator_file_version": acc.file_version,
        "scalars": {
            tag: [[e.step, f32_bits(e.value), e.wall_time] for e in acc.Scalars(tag)]
            for tag in acc.Tags()[event_accumulator.SCALARS]
        },
    }


def records(path):
    reader = pywrap_tensorflow.PyRecordReader_New(path)
    n, data_loss = 0, None
    try:
        while True:
            reader.GetNext()
            n += 1
    except errors.OutOfRangeError:
        pass
    except errors.DataLossError as e:
        data_loss = e.message
    loaded = sum(1 for _ in RawEventFileLoader(path).Load())
    return {"records": n, "loaded": loaded, "data_loss": data_loss}


if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    print(json.dumps({"scalars": scalars, "records": records}[mode](path)))
