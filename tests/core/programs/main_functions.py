"""A __main__ program: its functions and classes must travel to the remote as source.

Usage: main_functions.py REPO_ROOT PYTHON...   prints one line of results per remote PYTHON.
"""

import functools
import os
import sys

sys.path.insert(0, sys.argv[1])
from chopsticks_nb.tunnel import Local

FACTOR = 3


def triple(x):
    return x * FACTOR + len(os.sep) - 1


def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)


def is_even(n):
    return True if n == 0 else is_odd(n - 1)


def is_odd(n):
    return False if n == 0 else is_even(n - 1)


def make_adder(k):
    def add(x):
        return x + k

    return add


def make_counter():
    count = 0

    def step():
        nonlocal count
        count += 1
        return count

    return step


class Point:
    scale = FACTOR

    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm1(self) -> "int":
        return (abs(self.x) + abs(self.y)) * Point.scale

    @property
    def doubled(self):
        return Point(self.x * 2, self.y * 2)


class Point3(Point):
    def norm1(self):
        return super().norm1() + 1


@functools.lru_cache(maxsize=None)  # noqa: UP033 - a decorator with arguments, on purpose
def cached(x):
    return x + 1


def uses_point(p):
    return p.doubled.norm1()


def with_defaults(a, b=FACTOR, *, c=[1, 2]):  # noqa: B006 - the default must travel as a value
    return [a, b, c]


def annotated(x: "SomethingUndefined | None" = None) -> int:  # noqa: F821 - never evaluated
    return 7


square = lambda v: v * v  # noqa

for py in sys.argv[2:]:
    with Local("remote", python3=py) as t:
        print(
            t.call(triple, 2),
            t.call(fact, 5),
            t.call(is_even, 10),
            t.call(make_adder(5), 1),
            t.call(square, 9),
            t.call(uses_point, Point(1, -2)),
            t.call(Point3(1, 1).norm1),
            t.call(with_defaults, 1),
            t.call(annotated),
            t.call(make_counter()),
            t.call(cached, 1),
        )
