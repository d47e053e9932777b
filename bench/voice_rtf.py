"""Voice-note transcription speed and memory: real-time factor (RTF) and peak RSS.

RTF = processing time / audio duration (decode + transcription; the one-off model load is
reported apart). Measured for the bundled models ``tiny.en`` (English clips) and ``base``
(multilingual; Spanish clips, the demo's language), int8, beam 1 and 5, on 5 s, 30 s and 120 s
OGG/Opus voice notes made with espeak-ng; and faster-whisper's batched pipeline against the
sequential one in the same run. Every configuration runs in a fresh process pinned to the same
CPUs, so its peak memory is its own. The baseline each figure is compared with is measured in
the same run: beam 5 against beam 1, batched against sequential, base against tiny.en.

Goal (issue 7): a 30 s voice note transcribed in under 10 s with ``base`` on 2 cores.

    .venv/bin/python bench/voice_rtf.py            # every configuration (a few minutes)
    .venv/bin/python bench/voice_rtf.py --quick    # 5 s and 30 s clips only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# About a minute of speech each, without repeats: Whisper re-decodes a window whose text
# compresses too well (a sign of a decoding loop), so looping a short sentence would measure
# those fallbacks instead of normal speech. Longer clips loop the minute.
TEXT = {
    "es": (
        "Buenos días, quería preguntar por los zapatos negros que vi en su catálogo. "
        "¿Tienen la talla cuarenta y dos? Mi hermana compró unas sandalias rojas el mes pasado "
        "y quedó encantada con la calidad. También me interesa saber cuánto cuesta el envío a "
        "Sevilla y si puedo pagar con tarjeta cuando llegue el pedido. Trabajo por las mañanas, "
        "así que preferiría recibirlo por la tarde, después de las cinco. Si no tienen mi talla, "
        "¿podrían avisarme cuando vuelva a estar disponible? Otra pregunta: la chaqueta de cuero "
        "marrón, ¿es impermeable o solo sirve para el otoño? Vi que hay un descuento para "
        "clientes nuevos; no sé si todavía está vigente. Por último, necesito una factura a "
        "nombre de mi empresa, una pequeña librería del centro. Muchas gracias por su ayuda y "
        "que tengan un buen día."
    ),
    "en": (
        "Good morning, I wanted to ask about the black shoes I saw in your catalogue. "
        "Do you have them in size ten? My sister bought a pair of red sandals last month and "
        "she loved the quality. I would also like to know how much delivery to Boston costs "
        "and whether I can pay by card when the order arrives. I work in the mornings, so I "
        "would rather receive it in the afternoon, after five. If my size is out of stock, "
        "could you let me know when it is available again? Another question: is the brown "
        "leather jacket waterproof, or is it only meant for autumn? I noticed a discount for "
        "new customers; I am not sure whether it still applies. Finally, I need an invoice in "
        "the name of my company, a small bookshop downtown. Thank you for your help and have "
        "a nice day."
    ),
}
VOICE = {"es": "es", "en": "en-us"}
MODELS = {"tiny.en": "en", "base": "es"}
GOAL_S = 10.0  # base, 30 s clip, 2 cores


def make_clips(directory: Path, seconds: list[int]) -> dict[tuple[str, int], Path]:
    """One OGG/Opus voice note per language and length: speech looped and cut to the length."""
    clips = {}
    for language, text in TEXT.items():
        wav = directory / f"{language}.wav"
        subprocess.run(
            ["espeak-ng", "-v", VOICE[language], "-s", "150", "-w", str(wav), text],
            check=True,
        )
        for length in seconds:
            target = directory / f"{language}-{length}s.ogg"
            subprocess.run(
                ["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(wav),
                 "-t", str(length), "-c:a", "libopus", "-b:a", "24k", "-ar", "48000", "-ac", "1",
                 str(target)],
                check=True,
            )  # fmt: skip
            clips[(language, length)] = target
    return clips


def child(model: str, beam: int, mode: str, clip_paths: list[str], threads: int) -> None:
    """Measure one configuration in this (fresh) process; print one JSON object."""
    from apps.speech.audio import decode_audio
    from apps.speech.engine import TEMPERATURES, WhisperConfig, get_model, transcribe_file

    config = WhisperConfig(
        model=model,
        beam_size=beam,
        cpu_threads=threads,
        models_dir=ROOT / ".eva" / "whisper",
        allow_download=False,
        max_duration_s=600,
    )
    language = MODELS[model]
    started = time.perf_counter()
    whisper = get_model(config)
    load_s = time.perf_counter() - started
    pipeline = None
    if mode == "batched":
        from faster_whisper import BatchedInferencePipeline

        pipeline = BatchedInferencePipeline(whisper)
    runs = []
    for path in clip_paths:
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        if pipeline is None:
            transcript = transcribe_file(path, language=language, config=config)
            duration, words = transcript.duration_s, len(transcript.text.split())
        else:
            audio = decode_audio(Path(path), max_bytes=1 << 30, max_duration_s=600)
            segments, _info = pipeline.transcribe(
                audio,
                language=language,
                beam_size=beam,
                batch_size=8,
                vad_filter=True,
                temperature=TEMPERATURES,
            )
            words = len(" ".join(s.text for s in segments).split())
            duration = audio.size / 16000
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        runs.append({"clip_s": round(duration), "seconds": elapsed, "cpu_s": cpu, "words": words})
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"load_s": load_s, "peak_mb": peak_mb, "runs": runs}))


def run_child(
    model: str, beam: int, mode: str, clips: list[Path], cpus: set[int], threads: int
) -> dict:
    command = [sys.executable, __file__, "--child", model, str(beam), mode, str(threads)]
    command += [str(c) for c in clips]
    process = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        # Pinned before exec, so the child and all its threads stay on the same CPUs.
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        env=os.environ | {"OMP_NUM_THREADS": str(threads)},
    )
    return json.loads(process.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s and 30 s clips only")
    parser.add_argument("--cores", type=int, default=2, help="CPUs to pin to (default 2)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, beam, mode, threads, *paths = args.child
        child(model, int(beam), mode, paths, int(threads))
        return

    for tool in ("espeak-ng", "ffmpeg"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (Debian: apt-get install espeak-ng ffmpeg)")
    available = sorted(os.sched_getaffinity(0))
    cpus = set(available[: args.cores])
    threads = len(cpus)
    lengths = [5, 30] if args.quick else [5, 30, 120]
    load = os.getloadavg()[0]
    print(f"cores: {threads} pinned of {os.cpu_count()}; load average at start {load:.2f}")
    if load > 0.5 * (os.cpu_count() or 1):
        print("note: the machine is busy; absolute times are inflated, ratios less so")

    with tempfile.TemporaryDirectory(prefix="eva-voice-bench-") as tmp:
        clips = make_clips(Path(tmp), lengths)
        results: dict[tuple[str, int, str], dict] = {}
        configs = [(m, b, "sequential") for m in MODELS for b in (1, 5)]
        configs += [(m, 5, "batched") for m in MODELS]
        for model, beam, mode in configs:
            language = MODELS[model]
            paths = [clips[(language, length)] for length in lengths]
            results[(model, beam, mode)] = run_child(model, beam, mode, paths, cpus, threads)

    print()
    header = f"{'model':8} {'beam':>4} {'mode':10} {'load s':>6} {'peak MB':>8}"
    header += "".join(f" {f'{n}s: time':>10} {'RTF':>5} {'cpu s':>6}" for n in lengths)
    print(header)
    for (model, beam, mode), result in results.items():
        line = f"{model:8} {beam:>4} {mode:10} {result['load_s']:>6.1f} {result['peak_mb']:>8.0f}"
        for run in result["runs"]:
            line += f" {run['seconds']:>9.1f}s {run['seconds'] / run['clip_s']:>5.2f}"
            line += f" {run['cpu_s']:>6.1f}"
        print(line)

    print()

    def seconds(model: str, beam: int, mode: str, length: int) -> float:
        runs = results[(model, beam, mode)]["runs"]
        return next(r["seconds"] for r in runs if r["clip_s"] == length)

    for model in MODELS:
        for length in lengths:
            beam1 = seconds(model, 1, "sequential", length)
            beam5 = seconds(model, 5, "sequential", length)
            print(
                f"{model:8} {length:>4}s  beam 5 / beam 1: {beam5 / beam1:4.2f}x   "
                f"batched / sequential (beam 5): "
                f"{seconds(model, 5, 'batched', length) / beam5:4.2f}x"
            )
    for length in lengths:
        ratio = seconds("base", 5, "sequential", length) / seconds(
            "tiny.en", 5, "sequential", length
        )
        print(f"base / tiny.en (beam 5, {length}s): {ratio:4.2f}x")

    print(
        "\ncpu s: CPU time (user + system) of the transcription. On a busy machine wall time "
        f"includes waiting for the CPU; cpu s / {threads} is what the same work needs on "
        f"{threads} idle cores at best."
    )
    if 30 in lengths:
        runs = results[("base", 5, "sequential")]["runs"]
        cpu = next(r["cpu_s"] for r in runs if r["clip_s"] == 30)
        print(
            f"base, beam 5, 30 s: {cpu:.1f} CPU-seconds -> about {cpu / threads:.1f} s on "
            f"{threads} idle cores"
        )
        best = min(
            seconds("base", b, mode, 30)
            for b, mode in ((1, "sequential"), (5, "sequential"), (5, "batched"))
        )
        default = seconds("base", 5, "sequential", 30)
        verdict = "MET" if default < GOAL_S else "NOT MET"
        print(
            f"\ngoal: 30 s voice note with base on {threads} cores in < {GOAL_S:.0f} s: "
            f"{default:.1f} s with the defaults (beam 5, sequential), best {best:.1f} s "
            f"-> {verdict}"
        )


if __name__ == "__main__":
    main()
