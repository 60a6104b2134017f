"""``admission.Turns``: one decision per pass of the event loop, sockets read between them."""

from __future__ import annotations

import asyncio
import socket

from fraudstream.api.admission import Turns


async def _decisions_ready_at_once(
    count: int, turns: Turns | None, arrive_during_first: bool = False
) -> list[tuple[str, int]]:
    """``count`` decisions made ready in one pass (as Redis answers that arrive together).

    Returns what ran, in order, each with the number of the loop's pass it ran in. With
    ``arrive_during_first``, the first decision writes to a socket the loop watches, as a
    request arriving while a worker decides; its reading is recorded as ``arrival``.
    """
    loop = asyncio.get_running_loop()
    passes = 0

    def tick() -> None:  # one call per pass of the loop: counts them
        nonlocal passes
        passes += 1
        loop.call_soon(tick)

    ran: list[tuple[str, int]] = []
    reader, writer = socket.socketpair()
    reader.setblocking(False)

    def arrival() -> None:
        reader.recv(16)
        ran.append(("arrival", passes))

    loop.add_reader(reader.fileno(), arrival)
    ready = asyncio.Event()

    async def decide(index: int) -> None:
        await ready.wait()
        if turns is not None:
            await turns.take()
        ran.append((f"decision {index}", passes))
        if index == 0 and arrive_during_first:
            writer.send(b"POST /score")

    try:
        tasks = [asyncio.create_task(decide(i)) for i in range(count)]
        await asyncio.sleep(0)
        loop.call_soon(tick)
        ready.set()
        await asyncio.gather(*tasks)
        for _ in range(3):
            await asyncio.sleep(0)
    finally:
        loop.remove_reader(reader.fileno())
        reader.close()
        writer.close()
    return ran


def test_decisions_ready_together_run_in_passes_of_their_own_in_arrival_order() -> None:
    ran = asyncio.run(_decisions_ready_at_once(5, Turns()))

    assert [name for name, _ in ran] == [f"decision {i}" for i in range(5)]
    passes = [number for _, number in ran]
    assert passes == sorted(passes)
    assert len(set(passes)) == 5, f"two decisions shared a pass: {ran}"


def test_without_turns_they_share_one_pass() -> None:
    """The behaviour ``Turns`` changes: otherwise the test above would prove nothing."""
    ran = asyncio.run(_decisions_ready_at_once(5, None))

    assert len({number for _, number in ran}) == 1


def test_a_request_arriving_during_a_decision_is_read_before_the_next_decision() -> None:
    with_turns = asyncio.run(_decisions_ready_at_once(4, Turns(), arrive_during_first=True))
    without = asyncio.run(_decisions_ready_at_once(4, None, arrive_during_first=True))

    assert [name for name, _ in with_turns][:2] == ["decision 0", "arrival"]
    assert [name for name, _ in without][-1] == "arrival"


def test_a_cancelled_waiter_hands_its_turn_on() -> None:
    async def scenario() -> tuple[list[int], bool]:
        turns = Turns()
        order: list[int] = []

        async def decide(index: int) -> None:
            await turns.take()
            order.append(index)

        tasks = [asyncio.create_task(decide(i)) for i in range(3)]
        await asyncio.sleep(0)  # 0 took this pass's turn, 1 and 2 wait for theirs
        tasks[1].cancel()  # its client went away
        await asyncio.wait_for(tasks[2], timeout=1)
        # The turns are free again: a new decision does not wait forever.
        await asyncio.wait_for(turns.take(), timeout=1)
        return order, tasks[1].cancelled()

    order, cancelled = asyncio.run(scenario())
    assert (order, cancelled) == ([0, 2], True)


def test_a_turn_held_by_a_stopped_loop_does_not_block_the_next_loop() -> None:
    """An application served by one loop after another (a server or test client stopped
    and started again): the turn of a loop that stopped before its next pass is dropped."""
    turns = Turns()
    first = asyncio.new_event_loop()

    async def decide_and_stop() -> None:
        await turns.take()
        first.stop()  # this pass ends the loop: the pass that would hand the turn on never runs

    try:
        task = first.create_task(decide_and_stop())
        first.run_forever()
        assert task.done()
    finally:
        first.close()

    async def decide_again() -> None:
        await asyncio.wait_for(turns.take(), timeout=1)

    asyncio.run(decide_again())
