"""`gankit prepare SRC OUT --format …`: convert a corpus into wavs at one rate plus train/val lists, or images
into one uint8 array (`--format images`); `gankit prepare --builtin digits OUT` writes scikit-learn's digits,
`gankit prepare --builtin vc-demo OUT` a parallel multi-speaker corpus synthesised with festival and espeak-ng,
`gankit prepare --builtin instruments OUT` the same MIDI phrases rendered by fluidsynth on six instruments."""

from __future__ import annotations

import argparse
from typing import Any

IMAGE_FORMAT = "images"
AUDIO_ONLY = ("sample_rate", "min_seconds", "mel_stats")  # options an image corpus refuses
IMAGE_ONLY = ("image_size", "channels")
BUILTINS = ("digits", "vc-demo", "instruments")


def register(subparsers: argparse._SubParsersAction) -> None:
    from gankit.data.formats import FORMATS  # a few std-lib imports: keeps parser building cheap

    parser = subparsers.add_parser(
        "prepare",
        help="convert a corpus into OUT/wavs + train.txt/val.txt (or images into OUT/images.npy)",
        description=(
            "Convert a corpus into OUT/wavs/<id>.wav (mono 16-bit PCM at one sample rate), OUT/train.txt and "
            "OUT/val.txt (id|text) and OUT/skipped.txt (every file that could not be used, with the reason); "
            "with --mel-stats also OUT/mel_stats.json (per-band mel statistics of the training files). "
            "--format images: every image under SRC, centre-cropped and resized, into OUT/images.npy (uint8 "
            "[N, C, S, S]) with OUT/images.txt (the id of each row) and the same lists. "
            "--format speakers: a folder per speaker (SRC/<speaker>/**/*.wav, or VCTK's SRC/wav48/<speaker>/ with "
            "SRC/txt/<speaker>/ transcripts), ids <speaker>/<utterance>, OUT/speakers.tsv (speaker, label, group), "
            "and a validation split holding out the same sentences for every speaker. "
            "--format domains: a folder per domain for music translation (SRC/<domain>/**/*.wav: an instrument, a "
            "genre), ids <domain>/<item>, OUT/domains.tsv (domain, label), and a validation split per domain (its "
            "last --val-size files in sorted order). "
            "--builtin digits OUT (no SRC): scikit-learn's 1,797 handwritten digits at 32×32 with OUT/labels.npy "
            "and a digits classifier OUT/digits_classifier.pt to score generated digits. "
            "--builtin vc-demo OUT: a parallel English/Russian multi-speaker corpus synthesised offline with "
            "festival and espeak-ng voices (Debian packages), in the speakers layout with OUT/mel_stats.json "
            "(hifigan preset). "
            "--builtin instruments OUT: 30 MIDI phrases (scales, arpeggios, melodies) rendered offline by fluidsynth "
            "as piano, violin, cello, trumpet, clarinet and flute (Debian packages fluidsynth, timgm6mb-soundfont), "
            "in the domains layout at 16 kHz."
        ),
    )
    parser.add_argument("src", metavar="SRC", nargs="?", help="corpus folder (none with --builtin)")
    parser.add_argument("out", metavar="OUT", nargs="?",
                        help="output folder, apart from SRC (rerunning into it replaces what an earlier gankit "
                        "prepare wrote there, and nothing else)")
    parser.add_argument("--format", choices=(*FORMATS, IMAGE_FORMAT), default=None,
                        help="corpus layout (required unless --builtin)")
    parser.add_argument("--builtin", choices=BUILTINS, default=None,
                        help="write a corpus shipped with a dependency instead of reading SRC: digits = "
                        "scikit-learn's 8×8 handwritten digits upscaled to 32×32, one channel, with labels and a "
                        "digits classifier; vc-demo = 8 synthetic voices (5 English, 3 Russian) each reading its "
                        "group's 40 sentences, at 22050 Hz, for voice conversion (needs festival, festvox-kallpc16k, "
                        "festvox-kdlpc16k, festvox-us-slt-hts, festvox-ru and espeak-ng); instruments = the same 30 "
                        "MIDI phrases played by 6 instruments, at 16000 Hz, for music translation (needs fluidsynth "
                        "and timgm6mb-soundfont)")
    parser.add_argument("--sample-rate", type=int, default=None, metavar="SR",
                        help="output rate in Hz (default: the source rate, the most common one when mixed)")
    parser.add_argument("--val-size", type=int, default=None, metavar="N",
                        help="validation files: the last N ids in sorted order (default: min(100, 10%% of files)); "
                        "--format speakers and --builtin vc-demo: N sentences per speaker, the same sentences for "
                        "every speaker that read them (default: 10%% of the median speaker's files, 1..10; vc-demo 5); "
                        "--format domains: the last N files of each domain (same default); --builtin instruments: the "
                        "last N phrases of every instrument (default 3)")
    parser.add_argument("--min-seconds", type=float, default=None, metavar="S",
                        help="skip audio files shorter than this (default 0.5)")
    parser.add_argument("--image-size", type=int, default=None, metavar="S",
                        help="--format images: side of the square images in pixels (default 64; DCGAN takes 32 or "
                        "64); smaller sources than S/2 on the short side are skipped")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=None,
                        help="--format images: 3 = RGB (default), 1 = grey")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="conversion (vc-demo: also synthesis; instruments: also rendering) processes "
                        "(default: the CPU count)")
    parser.add_argument("--mel-stats", default=None, metavar="PRESET_OR_CONFIG",
                        help="also write OUT/mel_stats.json: per-band mean/scale of this mel front-end over the "
                        "training files: a preset at the output rate (parallel_wavegan, which training normalises "
                        "by; or any other, e.g. hifigan, which StarGAN-VC normalises by itself) or a config "
                        "name/YAML whose frontend section normalises (parallel_wavegan)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def _refuse(args: argparse.Namespace, names: tuple[str, ...], why: str) -> None:
    from gankit.errors import ConfigError

    given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)}: not used {why}; leave {'it' if len(given) == 1 else 'them'} out")


def run(args: argparse.Namespace) -> int:
    from gankit.errors import ConfigError

    if args.builtin is not None:
        if args.out is not None or args.format is not None:
            raise ConfigError(f"--builtin {args.builtin} takes OUT only (no SRC, no --format): "
                              f"gankit prepare --builtin {args.builtin} OUT")
        if args.src is None:
            raise ConfigError(f"--builtin {args.builtin} needs OUT: gankit prepare --builtin {args.builtin} OUT")
        report: Any
        if args.builtin == "vc-demo":
            _refuse(args, (*AUDIO_ONLY, *IMAGE_ONLY), "by --builtin vc-demo (22050 Hz, hifigan mel statistics)")
            from gankit.data.vc_demo import DEFAULT_VAL_SENTENCES, prepare_vc_demo

            report = prepare_vc_demo(
                args.src,
                val_size=DEFAULT_VAL_SENTENCES if args.val_size is None else args.val_size,
                workers=args.workers,
                progress=not args.no_progress,
            )
            print(report.summary())
            return 0
        if args.builtin == "instruments":
            _refuse(args, (*AUDIO_ONLY, *IMAGE_ONLY), "by --builtin instruments (16000 Hz)")
            from gankit.data.instruments import DEFAULT_VAL_PHRASES, prepare_instruments

            report = prepare_instruments(
                args.src,
                val_size=DEFAULT_VAL_PHRASES if args.val_size is None else args.val_size,
                workers=args.workers,
                progress=not args.no_progress,
            )
            print(report.summary())
            return 0
        _refuse(args, (*AUDIO_ONLY, "image_size", "channels"), f"by --builtin {args.builtin} (32×32, one channel)")
        from gankit.data.digits import prepare_builtin

        report = prepare_builtin(args.builtin, args.src, val_size=args.val_size)
        print(report.summary())
        return 0
    if args.format is None or args.src is None or args.out is None:
        raise ConfigError(f"gankit prepare needs SRC OUT --format FORMAT, or --builtin {'|'.join(BUILTINS)} OUT")
    if args.format == IMAGE_FORMAT:
        _refuse(args, AUDIO_ONLY, "by --format images")
        from gankit.data.images import DEFAULT_CHANNELS, DEFAULT_IMAGE_SIZE, prepare_images

        report = prepare_images(
            args.src,
            args.out,
            image_size=DEFAULT_IMAGE_SIZE if args.image_size is None else args.image_size,
            channels=DEFAULT_CHANNELS if args.channels is None else args.channels,
            val_size=args.val_size,
            workers=args.workers,
            progress=not args.no_progress,
        )
        print(report.summary())
        return 0
    _refuse(args, IMAGE_ONLY, f"by the audio format {args.format}")
    from gankit.data.prepare import DEFAULT_MIN_SECONDS, prepare_corpus

    report = prepare_corpus(
        args.src,
        args.out,
        args.format,
        sample_rate=args.sample_rate,
        val_size=args.val_size,
        min_seconds=DEFAULT_MIN_SECONDS if args.min_seconds is None else args.min_seconds,
        workers=args.workers,
        progress=not args.no_progress,
        mel_stats=None if args.mel_stats is None else stats_frontend_config(args.mel_stats),
    )
    print(report.summary())
    return 0


def stats_frontend_config(name: str) -> dict[str, Any]:
    """--mel-stats' front-end config: a preset's name (any preset), or a config name/YAML's frontend section,
    refused when its preset does not normalise (training with that config would not use the statistics)."""
    from gankit.audio.mel import PRESETS
    from gankit.config import read_config_source
    from gankit.data.corpus_stats import refuse_unused_statistics, statistics_frontend
    from gankit.errors import ConfigError

    if name in PRESETS:
        return {"preset": name}
    try:
        _, config = read_config_source(name)
    except ConfigError as exc:
        raise ConfigError(f"--mel-stats {name}: not a mel preset ({', '.join(sorted(PRESETS))}), and as a "
                          f"config: {exc}") from None
    frontend = config.get("frontend")
    if not isinstance(frontend, dict) or "preset" not in frontend:
        raise ConfigError(f"--mel-stats {name}: the config has no frontend section with a preset")
    cfg = {k: v for k, v in frontend.items() if k not in ("mean", "scale")}
    refuse_unused_statistics(statistics_frontend(cfg), f"--mel-stats {name}")
    return cfg
