"""The evaluation of training.evaluate through a served model: each image one REST request.

    python -m asl_serve.harness.served_evaluation --url http://127.0.0.1:8080 [--version 1.0-int8 --version 1.0-fp32]
        [--data DIR ...] [--report reports/evaluation-served.md]

Same sets, same loop and same report as in process (`make evaluate URL=... VERSION=...`), so the two can be
compared line by line. Tooling, not training: training knows nothing of the server.
"""

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from asl_serve.client.rest import RestClient
from asl_serve.client.settings import ImageRejected, Server
from asl_serve.layout import KEY_FILE, REPORTS
from asl_serve.model.classes import CLASS_NAMES
from asl_serve.training.dataset import Sample
from asl_serve.training.evaluate import NO_ANSWER, Answers, Predictor, run


def served(url: str, version: str | None, key_file: Path) -> Predictor:
    """Each file's bytes through TorchServe's REST API, one request per image."""
    client = RestClient(Server(inference_url=url, key_file=key_file))

    def answer(path: Path) -> tuple[int, bool]:
        """The served label and whether a hand was found; a refused image counts as wrong, any other
        failure (server down, bad token, unknown version) stops the run instead of reporting 0%."""
        try:
            answered = client.predict(path, version)
        except ImageRejected as error:
            print(f"{path}: {error}")
            return NO_ANSWER, False
        return CLASS_NAMES.index(answered["label"]), answered.get("hand") is not None

    def predict(samples: list[Sample]) -> Answers:
        labels = torch.tensor([s.label for s in samples], dtype=torch.long)
        answers = [answer(s.path) for s in tqdm(samples, desc=url, leave=False)]
        return Answers(labels, torch.tensor([a[0] for a in answers]), torch.tensor([a[1] for a in answers]))

    return predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="TorchServe's inference URL")
    parser.add_argument("--version", action="append", help="a model version (repeatable; default: the server's "
                        "default version)")
    parser.add_argument("--key-file", type=Path, default=KEY_FILE, help="TorchServe's keys")
    parser.add_argument("--data", type=Path, action="append", help="folder-per-class tree, one set each")
    parser.add_argument("--report", type=Path, default=REPORTS / "evaluation-served.md")
    args = parser.parse_args()
    predictors = {f"served {v or 'default'}": served(args.url, v, args.key_file) for v in args.version or [None]}
    run(predictors, args.data, "python -m asl_serve.harness.served_evaluation " + " ".join(sys.argv[1:]), args.report)


if __name__ == "__main__":
    main()
