"""Which language a request is in, English or German: counted function words, no model.

Short requests are mostly function words and a few verbs, so each language has a list of
words that are common in requests and rare in the other ("the", "my", "remind" against
"der", "mein", "erinnere"). Umlauts and ß count for German. A tie, or a text with no such
word ("OK", "12345"), is English: the planner's default language.
"""

from __future__ import annotations

import re

from graph.intents.spec import Language
from graph.intents.text import fold, words, wordset

_EN = wordset(
    """
    the a and or to of for on at with from by my me i i'm i'd i've you your our us we is
    are be were do does did don't can could would will should please this that these
    those it its what what's which who whom when where why how there here any some all new
    tomorrow today tonight yesterday week next last morning afternoon evening night
    remind reminder add put set find search look show tell read open close start send write
    reply forward schedule book move delete cancel check create make take give let need want
    have has get list file files folder appointment calendar inbox thanks thank bye goodbye
    hello good great cheers see later much lot about into out off up after then just now again
    every
    """
)
_DE = wordset(
    """
    der die das den dem des ein eine einen einem einer und oder zu zum zur von vom mit fuer
    auf aus bei nach ueber unter mein meine meinen meinem meiner dein deine ich mich mir du
    dich dir wir uns unser unsere ist sind bin hab habe hat haben war kannst koenntest
    wuerdest bitte mal noch auch schon nicht kein keine was wer wie wo wann welche welcher
    welches warum gibt es morgen heute uebermorgen gestern woche naechste naechsten diese
    dieser abend nachmittag vormittag uhr erinnere erinner erinnerung erinnerungen liste
    setz setze trag trage such suche finde zeig zeige lies oeffne schliess schliesse starte
    schick schicke sende schreib schreibe antworte buch buche verschieb verschiebe loesch
    loesche sag mach mache leg lege erstelle plane termin termine kalender besprechung datei
    dateien ordner mails posteingang aufgabe aufgaben danke dankeschoen hallo moin servus
    tschuess tschuessi guten gute morgen tag abend nacht vielen dank bis spaeter bald
    """
)
_GERMAN_LETTERS = re.compile(r"[äöüß]", re.IGNORECASE)


def detect_language(text: str) -> Language:
    """``"de"`` when the request reads as German, else ``"en"``."""
    tokens = words(fold(text[:1000]))
    german = sum(token in _DE for token in tokens) + 2 * len(_GERMAN_LETTERS.findall(text))
    english = sum(token in _EN for token in tokens)
    return "de" if german > english else "en"
