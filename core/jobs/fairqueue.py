"""The fair order of the queue: round robin by owner, not first come first served.

In a classroom one student's 25-point sweep or 10-seed repeat must not make
the 29 others wait behind it. So the next job to start is the oldest waiting
job of the owner who has waited longest since one of their jobs last started;
an owner none of whose jobs has started yet (on this server) comes before
everyone who has had a turn, the earliest to submit first. Ranking every
waiting job by playing that rule forwards gives the queue's positions
(1 = next): with owners A (three jobs), B and C (one each) and A's first job
running, the queue reads B, C, A, A.

Jobs without an owner (the command line, a notebook) are one owner among the
others. The order lives only in the server's memory: after a restart every
owner starts afresh.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Mapping, Sequence
from typing import Protocol, TypeVar


class Waiting(Protocol):
    """What the order needs to know of a waiting job."""

    owner: str | None


J = TypeVar("J", bound=Waiting)


def fair_order(waiting: Sequence[J], last_start: Mapping[Hashable, int]) -> list[J]:
    """The waiting jobs in the order they will start.

    Args:
        waiting: the queued jobs in the order they were submitted (oldest first).
        last_start: for each owner who has had a job started, a number that grows with
            every start (the worker's count of starts when that owner's last one began).

    Returns:
        The same jobs, next first: each owner's jobs keep their submission order,
        and owners take turns, the one whose last start is oldest first.
    """
    jobs_of: dict[Hashable, list[J]] = {}
    for job in waiting:
        jobs_of.setdefault(job.owner, []).append(job)
    # (turn, then the order of submission): owners never started have turn -1, before every real start.
    heap = [(last_start.get(owner, -1), i, owner) for i, owner in enumerate(jobs_of)]
    heapq.heapify(heap)
    turn = max(last_start.values(), default=-1)
    order: list[J] = []
    while heap:
        _, i, owner = heapq.heappop(heap)
        mine = jobs_of[owner]
        order.append(mine.pop(0))
        if mine:
            turn += 1  # this owner has just had a (planned) start: back of the line
            heapq.heappush(heap, (turn, i, owner))
    return order
