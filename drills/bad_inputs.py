"""Send the bad-input corpus to a private TorchServe and report how each case was answered.

    python -m asl_serve.drills.bad_inputs [--warm-up 2] [--rounds 3] [--report reports/bad_inputs.md]

It starts its own TorchServe from config.properties (harness.server: free ports, a temporary copy
of model_store/, one worker per version) and sends real photos, then the whole corpus `--warm-up`
times, then `--rounds` more times. Passing means: every case answered as documented in every round, the same
worker PIDs throughout (no worker restarted), resident memory of the frontend and of every worker grown
by less than 10% over the rounds after the warm-up, and a good photo still classified right. Exits with
status 1 otherwise.

How memory is measured: the server's JVM starts with a fixed heap, committed and touched (FIXED_HEAP,
drills/processes.py), and the warm-up rounds let Netty's buffers grow to what 8 MiB bodies need and
the worker's allocator to what a 40-megapixel image needs; that growth stops there (it is reported too).
A leak is growth that goes on with every further pass.
"""

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from asl_serve.client.rest import RestClient
from asl_serve.client.settings import Server
from asl_serve.drills.corpus import Answer, cases, send, table
from asl_serve.drills.processes import FIXED_HEAP, HEAP_MB, MAX_GROWTH, ONE_WORKER, growth, resident_mb, worker_pids
from asl_serve.handler import ts_config
from asl_serve.harness.reports import drill_parser, publish, verdict
from asl_serve.harness.server import private_torchserve
from asl_serve.layout import REPO, sample_photos
from asl_serve.model.config import MODEL_NAME

WARM_UP_EVERY = 4  # every 4th committed photo is sent before the corpus


@dataclass
class CorpusRun:
    rounds: list[list[Answer]]  # warm-up rounds first
    warm_up: int
    pids_before: dict[str, list[int]]
    pids_after: dict[str, list[int]]
    memory_cold: dict[str, float]  # after the real photos, before any bad input
    memory_before: dict[str, float]  # after the warm-up rounds
    memory_after: dict[str, float]
    photo: Path  # the committed photo the corpus is made from, and asked again at the end
    label: str
    warm_up_photos: int
    label_after: str

    @property
    def answers(self) -> list[Answer]:
        """The last round's answers."""
        return self.rounds[-1]

    @property
    def growth(self) -> dict[str, float]:
        return growth(self.memory_before, self.memory_after)

    @property
    def failures(self) -> list[str]:
        """Everything that falls short of the issue's bar, one line each."""
        every = [a for answers in self.rounds for a in answers]
        problems = sorted({f"{a.case.name}: {a.status} {a.kind}" for a in every if not a.as_documented})
        if self.pids_after != self.pids_before:
            problems.append(f"worker PIDs changed: {self.pids_before} -> {self.pids_after}")
        problems += [f"{name} grew {g:.1%}" for name, g in self.growth.items() if g >= MAX_GROWTH]
        if self.label_after != self.label:
            problems.append(f"a good {self.label} photo is now classified {self.label_after}")
        return problems


def run_corpus(server: Server, warm_up: int = 2, rounds: int = 2) -> CorpusRun:
    """Send real photos, then the corpus `warm_up` + `rounds` times, watching worker PIDs and memory."""
    rest = RestClient(server)
    photos = sample_photos()
    (photo, label), warm_up_photos = photos[0], photos[::WARM_UP_EVERY]
    corpus = cases(photo, label)
    for path, _ in warm_up_photos:
        rest.predict(path)
    pids_before, memory_cold = worker_pids(rest), resident_mb(rest)
    answers = [[send(server, case) for case in corpus] for _ in range(warm_up)]
    memory_before = resident_mb(rest)
    answers += [[send(server, case) for case in corpus] for _ in range(rounds)]
    return CorpusRun(answers, warm_up, pids_before, worker_pids(rest), memory_cold, memory_before,
                     resident_mb(rest), photo, label, len(warm_up_photos), rest.predict(photo)["label"])


def report(run: CorpusRun) -> str:
    invalid = sum(a.case.status != 200 for a in run.answers)
    measured = len(run.rounds) - run.warm_up
    lines = [
        "# Bad inputs",
        "",
        f"`python -m asl_serve.drills.bad_inputs --warm-up {run.warm_up} --rounds {measured}`, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, on a private {ts_config.torchserve()} "
        "started from config.properties "
        f"(every version, one worker each; requests go to the default, {ts_config.default_version(MODEL_NAME)[0]}; "
        f"the JVM runs a fixed {HEAP_MB} MB heap, "
        "committed and touched, so that resident memory shows native growth: drills/processes.py; the "
        "allocator variables are make serve's). "
        f"{len(run.answers)} cases ({invalid} invalid, {len(run.answers) - invalid} odd but valid), made in memory "
        f"from `{run.photo.relative_to(REPO)}` (sign {run.label}). After {run.warm_up_photos} real photos, the corpus "
        "was sent "
        f"{run.warm_up} time(s) to warm up and {measured} more time(s); every round was checked, the table shows "
        "the last.",
        "",
        table(run.answers),
        "",
        "Resident memory (MB): cold is after the real photos, before is after the warm-up rounds, after is at "
        "the end; the bar (< 10%) applies to before -> after.",
        "",
        "| process | cold | before | after | growth |",
        "|---|---:|---:|---:|---:|",
        *(f"| {name} | {run.memory_cold[name]:.0f} | {run.memory_before[name]:.0f} | {run.memory_after[name]:.0f} "
          f"| {g:+.1%} |" for name, g in run.growth.items()),
        "",
        f"Worker PIDs before: {run.pids_before}; after: {run.pids_after}. "
        f"A good {run.label} photo afterwards: {run.label_after}.",
        "",
        verdict(run.failures),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = drill_parser("asl_serve.drills.bad_inputs", __doc__, "bad_inputs.md")
    parser.add_argument("--warm-up", type=int, default=2, help="rounds of the corpus before memory is measured")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the corpus measured")
    args = parser.parse_args(argv)
    with private_torchserve(args.model_store, settings=ONE_WORKER, properties=FIXED_HEAP) as torchserve:
        run = run_corpus(torchserve.server, args.warm_up, args.rounds)
    return publish(report(run), args.report, run.failures)


if __name__ == "__main__":
    sys.exit(main())
