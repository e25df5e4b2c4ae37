"""Rule evaluation in a process of its own, so that ingest and the rules use two cores.

The hub (``hub/engine.py``) starts ``python -m smartpole.hub.worker`` as its child
(``smartpole/child.py``: framed pickles over the child's stdin and stdout). The hub sends a
:class:`Seed` (rules as stored, the registry, rule states, latest values), then committed
batches, registry updates and timer ticks, one at a time; the worker answers each with an
:class:`~smartpole.hub.evaluator.Outcome` (or ``None``).

The hub keeps the authoritative rule states and latest values: it applies every answer to its
own copy before it sends the next message. So when the worker dies (killed, out of memory, a
bug), :class:`~smartpole.child.Child` starts another, seeds it from that copy and sends again
the message it had not answered: no committed reading goes unchecked, no rule state is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from smartpole.child import Child, Failure, serve
from smartpole.hub.directory import Directory
from smartpole.hub.evaluator import Evaluator, Latest, Outcome, RuleKey, State, compile_rules
from smartpole.model.columns import Columns, Row
from smartpole.model.rules import StoredRule
from smartpole.model.types import Reading

__all__ = [
    "Batch",
    "CheckRules",
    "DirectoryUpdate",
    "Message",
    "Part",
    "Reply",
    "Seed",
    "Tick",
    "hub_worker",
]


@dataclass(slots=True)
class Seed:
    """Everything the worker evaluates with; replaces what it had."""

    rules: list[StoredRule]
    directory: Directory
    states: dict[RuleKey, State]
    values: dict[int, Latest]
    before: dict[int, Latest]
    seen: dict[int, int]
    started: int
    timezone: str


@dataclass(frozen=True, slots=True)
class DirectoryUpdate:
    """A newly loaded registry."""

    directory: Directory


@dataclass(frozen=True, slots=True)
class Part:
    """One committed batch's readings that rules read, as columns, and when its devices were
    heard."""

    columns: Columns
    seen: dict[int, int]

    @classmethod
    def of(cls, readings: list[Reading], seen: dict[int, int]) -> Part:
        """The part of these readings."""
        return cls(Columns.of(readings), seen)

    def readings(self) -> list[Row]:
        """The readings again, in their order."""
        return self.columns.rows()


@dataclass(frozen=True, slots=True)
class Batch:
    """Committed batches, evaluated one after the other (those queued while the worker was
    busy travel together)."""

    parts: list[Part]


@dataclass(frozen=True, slots=True)
class Tick:
    """The timer: check the rules that time alone can change, as of ``now``."""

    now: int


@dataclass(frozen=True, slots=True)
class CheckRules:
    """Rules just added or changed: check them on the latest values."""

    rule_ids: tuple[int, ...]


Message = Seed | DirectoryUpdate | Batch | Tick | CheckRules
Reply = Outcome | Failure | None


# -- the child ---------------------------------------------------------------------------
def answer(evaluator: Evaluator | None, message: Message) -> tuple[Evaluator | None, Reply]:
    """The worker's answer to one message, and the evaluator from then on."""
    if isinstance(message, Seed):
        evaluator = Evaluator(message.timezone)
        evaluator.set_directory(message.directory)
        evaluator.load_rules(compile_rules(message.rules, message.directory))
        evaluator.seed_states(message.states)
        evaluator.seed_values(message.values, message.before, message.seen)
        evaluator.started = message.started
        return evaluator, None
    if evaluator is None:
        return None, Failure("not seeded")
    if isinstance(message, DirectoryUpdate):
        evaluator.set_directory(message.directory)
        return evaluator, None
    if isinstance(message, Batch):
        outcome = Outcome()
        for part in message.parts:
            outcome.add(evaluator.evaluate(part.readings(), part.seen))
        return evaluator, outcome
    if isinstance(message, CheckRules):
        return evaluator, evaluator.check_rules(message.rule_ids)
    return evaluator, evaluator.check_timed(message.now)


def main() -> None:
    """Answer the hub's messages until it closes stdin."""
    serve("hub worker", answer)


# -- the hub's side ----------------------------------------------------------------------
def hub_worker(
    seed: Callable[[], Seed],
    on_reply: Callable[[Message, Reply], None],
    on_restart: Callable[[], None] = lambda: None,
) -> Child:
    """The worker process as the hub sees it: ``seed`` builds a :class:`Seed` from the hub's
    own copy of states and values (called after every answer was applied); ``on_reply``
    applies an answer, before the next message can be sent; ``on_restart`` counts a restart."""
    return Child("smartpole.hub.worker", "hub worker", seed, on_reply, on_restart)


if __name__ == "__main__":
    # The module again under its own name: the messages' classes are its, not ``__main__``'s.
    from smartpole.hub import worker

    worker.main()
