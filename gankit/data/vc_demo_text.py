"""The sentences `--builtin vc-demo` synthesises: 40 English sentences written for gankit, and 40 Russian ones taken
from the festvox-ru package's own transcripts, cleaned for festival's Russian voice."""

from __future__ import annotations

import re
from pathlib import Path

from gankit.data.speakers import normalise_text
from gankit.errors import DataError

# Plain, varied, 6–14 words each; written for this project (no corpus text).
ENGLISH_SENTENCES: tuple[str, ...] = (
    "The kettle started to whistle just as the phone rang.",
    "Please leave your muddy boots outside the kitchen door.",
    "A small grey cat slept on the warm windowsill all afternoon.",
    "We missed the last bus and walked home under the stars.",
    "The library closes early on Sundays during the summer months.",
    "My neighbour grows tomatoes, beans and three kinds of pepper.",
    "The train to the coast leaves from platform four at noon.",
    "She painted the old fence a bright shade of yellow.",
    "Heavy rain kept the children indoors for most of the week.",
    "He forgot his umbrella again and arrived soaked to the skin.",
    "The bakery on the corner sells fresh bread every morning.",
    "Our teacher asked us to read two chapters before Friday.",
    "A strong wind blew the paper lanterns across the garden.",
    "The museum opened a new room full of ancient maps.",
    "They planted an apple tree in the middle of the yard.",
    "Turn left at the bridge and follow the river for a mile.",
    "The soup needs more salt and a little black pepper.",
    "I found an old letter hidden inside a dusty book.",
    "The football match was cancelled because the field was flooded.",
    "Her brother builds wooden boats in a shed behind the house.",
    "The clock in the hall has stopped at half past seven.",
    "We counted twelve ducks swimming near the edge of the pond.",
    "The engineer checked every cable before switching the machine on.",
    "Bring a warm jacket, because the evenings get cold in the hills.",
    "The concert hall was quiet until the first violin began.",
    "A delivery van blocked the narrow street for an hour.",
    "The farmer sold honey and eggs at the Saturday market.",
    "Nobody remembered who had left the lights on in the office.",
    "The pilot announced that we would land twenty minutes early.",
    "Fresh snow covered the roofs and muffled every sound in town.",
    "He wrote the shopping list on the back of an envelope.",
    "The river rose quickly after three days of steady rain.",
    "My grandmother tells the same story every winter by the fire.",
    "The new bridge will connect the two villages by next spring.",
    "Someone knocked twice on the door and then walked away.",
    "The students built a tiny robot that can climb stairs.",
    "Light from the lighthouse swept slowly across the dark water.",
    "The waiter brought us coffee, toast and a bowl of cherries.",
    "After the storm, the beach was covered with seaweed and shells.",
    "The map showed a path that nobody in the village had taken.",
)

FESTVOX_RU_TRANSCRIPTS = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits/etc/txt.done.data")
RUSSIAN_WORDS = (6, 12)  # words per chosen sentence: long enough to carry prosody, short to synthesise
_LINE = re.compile(r'^\(\s*\S+\s+"(.*)"\s*\)\s*$')
# What festival's Russian letter-to-sound rules can read: Cyrillic letters, spaces, a hyphen inside a word and
# plain punctuation. On anything else (« » — №, Latin letters) it writes an empty file and exits 0.
_READABLE = re.compile(r"^[А-Яа-яЁё ,.?!:;-]+$")


def clean_russian(text: str) -> str:
    """`text` in the characters festival's Russian voice reads: no stress marks (+), quotes or guillemets;
    dashes and free-standing hyphens as commas (none after other punctuation), № as the word, an apostrophe as a
    space; repeated commas and spaces collapsed."""
    text = text.replace("+", "").replace("№", " номер ").replace("\\", "")
    text = re.sub(r"[«»„“”\"`]", "", text).replace("'", " ")  # д'Артуа → д Артуа
    text = re.sub(r"\s*[—–]\s*|\s+-\s*|\s*-\s+", ", ", text)
    text = re.sub(r"\s*,[\s,]*", ", ", text)
    text = re.sub(r"([:;?!.]),\s*", r"\1 ", text)  # "сказал: - Да" became "сказал:, Да"
    text = " ".join(text.split()).strip(" ,")
    return re.sub(r"^[,.:;-]+\s*", "", text)


def russian_sentences(count: int, transcripts: Path = FESTVOX_RU_TRANSCRIPTS) -> list[str]:
    """`count` cleaned sentences of 6–12 words from festvox-ru's transcripts, spread evenly over the file."""
    try:
        lines = transcripts.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{transcripts} not found: install the Debian package festvox-ru "
                        "(sudo apt-get install festvox-ru)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{transcripts}: cannot be read as UTF-8 ({exc}); reinstall festvox-ru") from None
    fitting: dict[str, str] = {}  # normalised → cleaned; a repeated sentence counts once
    for line in lines:
        match = _LINE.match(line.strip())
        if match is None:
            continue
        sentence = clean_russian(match.group(1))
        low, high = RUSSIAN_WORDS
        if _READABLE.match(sentence) and low <= len(sentence.split()) <= high:
            fitting.setdefault(normalise_text(sentence), sentence)
    chosen = list(fitting.values())
    if len(chosen) < count:
        raise DataError(f"{transcripts}: only {len(chosen)} sentences of {low}–{high} words, {count} needed")
    return [chosen[i * len(chosen) // count] for i in range(count)]
