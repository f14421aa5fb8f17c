"""engine/timing.py's ProducerClock counts the producer's share of a loop, not the consumer's."""

import time

import torch

from engine.timing import ProducerClock

PRODUCE_S, CONSUME_S, ITEMS = 0.03, 0.06, 4


def slow_items():
    for item in range(ITEMS):
        time.sleep(PRODUCE_S)
        yield item


def test_producer_clock_times_producing_and_not_consuming():
    clock = ProducerClock()
    taken = []
    for item in clock.timed(slow_items(), torch.device("cpu")):
        time.sleep(CONSUME_S)
        taken.append(item)
    assert taken == list(range(ITEMS)) and clock.items == ITEMS
    assert ITEMS * PRODUCE_S <= clock.seconds < ITEMS * (PRODUCE_S + CONSUME_S)
