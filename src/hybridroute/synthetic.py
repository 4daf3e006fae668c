"""Seeded synthetic customer-service messages labelled with sentiment and intent.

This is the embedded default data set: the demo and the test suite use it when a
user brings no data of their own.  It is built to look like a support inbox rather
than like a template dump: many phrasings per intent, slots for products, amounts,
dates and channels, sentiment of several strengths (negation, mild sarcasm, the odd
emoji), PII such as emails and order numbers, typos, long complaints with history
and mixed-sentiment messages.  A bag-of-words model learns it well but not
perfectly, which leaves room for a stronger model to matter.

Labelling rules, so that every label can be defended:

* sentiment is the writer's own feeling; politeness ("thanks in advance") and
  opinions reported from others ("a friend says it's brilliant") stay neutral;
* a mixed message takes the sentiment of its stronger clause, the later one on a
  tie (see :func:`_dominant_sentiment`);
* intent is the main topic, raised first; an aside about another topic ("Also,
  how do I reset my password?") does not change it, and a bare follow-up keeps
  the intent of the thread it follows.

Everything is a pure function of :class:`SyntheticConfig`: the same config gives the
same list, and randomness is a ``numpy.random.Generator`` passed down explicitly.

Example:
    >>> examples = generate(SyntheticConfig(n=2, seed=1))
    >>> [e.sentiment in SENTIMENTS for e in examples]
    [True, True]
"""

from __future__ import annotations

import csv
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from hybridroute.config import is_integer, is_number
from hybridroute.errors import ConfigError

SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
INTENTS: tuple[str, ...] = (
    "billing",
    "delivery",
    "refund",
    "account_access",
    "technical_issue",
    "cancellation",
    "product_question",
    "order_change",
    "feedback",
)

# Target class balance, in SENTIMENTS order: support inboxes skew negative.
_SENTIMENT_SHARES: tuple[float, ...] = (0.4, 0.3, 0.3)
# Share of messages that open with a bare follow-up ("further to my previous message"): their intent
# is only knowable from the earlier thread, as in real inboxes, so no text model can
# get them all right.
_FOLLOW_UP_RATE = 0.09
# Share of long (and of short) messages that also raise a secondary topic from
# another intent; the label stays with the main topic, stated first.
_ASIDE_RATE = 0.6
_SHORT_ASIDE_RATE = 0.2
_EMOJI_RATE = 0.05
_LOWERCASE_RATE = 0.08
_SECOND_PII_RATE = 0.1


@dataclass(frozen=True)
class SyntheticConfig:
    """How many messages to generate and how noisy they are.

    Attributes:
        n: Number of messages, at least 1.
        seed: Seed of the random generator, a non-negative integer.
        typo_rate: Per-word probability of a typo (swap, drop or doubled letter).
        pii_rate: Share of messages carrying an email, phone, account or order number.
        mixed_rate: Share of messages with both a positive and a negative clause;
            only polar messages can be mixed, so the share tops out at 0.7.
        long_rate: Share of long multi-sentence complaints with history.
    """

    n: int = 3000
    seed: int = 0
    typo_rate: float = 0.03
    pii_rate: float = 0.35
    mixed_rate: float = 0.12
    long_rate: float = 0.15

    def __post_init__(self) -> None:
        _check_int("n", self.n, minimum=1)
        _check_int("seed", self.seed, minimum=0)
        for name in ("typo_rate", "pii_rate", "mixed_rate", "long_rate"):
            _check_rate(name, getattr(self, name))


@dataclass(frozen=True)
class SyntheticExample:
    """One labelled message.

    Attributes:
        text: The message as a customer would type it.
        sentiment: One of :data:`SENTIMENTS`.
        intent: One of :data:`INTENTS`.
    """

    text: str
    sentiment: str
    intent: str


@dataclass(frozen=True)
class _Clause:
    """A sentiment-bearing clause; intensity runs from 1 (mild) to 3 (strong)."""

    text: str
    sentiment: str
    intensity: int


@dataclass(frozen=True)
class _IntentText:
    """Templates for one intent: what went wrong, what is asked, what went well."""

    problems: tuple[str, ...]
    requests: tuple[str, ...]
    wins: tuple[str, ...]


def _check_int(name: str, value: object, minimum: int) -> None:
    """Raise ConfigError unless ``value`` is an int >= ``minimum`` (bools are refused)."""
    if not is_integer(value) or value < minimum:
        raise ConfigError(f"SyntheticConfig.{name} must be an integer >= {minimum}, got {value!r}")


def _check_rate(name: str, value: object) -> None:
    """Raise ConfigError unless ``value`` is a real number in [0, 1] (NaN fails the test)."""
    if not is_number(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"SyntheticConfig.{name} must be a number in [0, 1], got {value!r}")


# --------------------------------------------------------------------------- vocabulary

_SLOTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "product": (
            "wireless headphones",
            "coffee grinder",
            "running shoes",
            "smart watch",
            "air fryer",
            "desk lamp",
            "winter jacket",
            "phone case",
            "blender",
            "backpack",
            "yoga mat",
            "bluetooth speaker",
            "electric kettle",
            "office chair",
            "robot vacuum",
            "gaming mouse",
            "baby monitor",
            "sofa cover",
            "water bottle",
            "e-reader",
            "AeroBuds Pro",
            "BrewMaster X2",
            "StrideRun 5",
            "Lumo lamp",
            "VoltBlend 3000",
            "PocketRead 7",
        ),
        "device": (
            "wireless headphones",
            "smart watch",
            "bluetooth speaker",
            "robot vacuum",
            "baby monitor",
            "e-reader",
            "AeroBuds Pro",
            "PocketRead 7",
            "gaming mouse",
            "smart doorbell",
            "fitness tracker",
        ),
        "day": ("Monday", "Saturday", "next Tuesday", "the weekend", "Friday", "tomorrow", "the 12th"),
        "date": (
            # Every value reads after "on" or "since": "on Boxing Day", "since the 3rd".
            "Monday",
            "Tuesday",
            "Wednesday",
            "Friday morning",
            "the weekend",
            "the 28th",
            "June 2",
            "the 3rd",
            "March 14",
            "the 21st of June",
            "New Year's Eve",
            "the 9th",
            "Boxing Day",
            "Thursday night",
            "the 1st",
            "October 30",
        ),
        "duration": (
            "three days",
            "a week",
            "two weeks",
            "10 days",
            "over a month",
            "48 hours",
            "five working days",
            "nearly three weeks",
            "an hour",
            "a fortnight",
            "six weeks",
        ),
        "channel": (
            "email",
            "live chat",
            "phone",
            "the app",
            "Twitter",
            "the contact form",
            "WhatsApp",
            "your help centre",
        ),
        "month": ("January", "February", "March", "April", "May", "June", "July", "September"),
        "feature": (
            "the checkout page",
            "my order history",
            "the settings menu",
            "the barcode scanner",
            "the wishlist",
            "saved addresses",
            "the basket",
            "the search bar",
        ),
        "compat": (
            "an iPhone",
            "Android phones",
            "Windows laptops",
            "a UK socket",
            "my older model",
            "Alexa",
            "a Mac",
            "smart TVs",
        ),
        "plan": ("monthly", "premium", "family", "student", "annual", "Plus", "basic"),
        "agent": (
            "your agent",
            "Maria from support",
            "the guy on live chat",
            "your colleague Dev",
            "the lady on the phone",
            "someone on your team",
            "the person on chat",
            "Tom in billing",
        ),
        # Long-tail wording: rare words are where a bag of words runs out of evidence.
        "neg_adj": (
            "frustrated",
            "disappointed",
            "annoyed",
            "fed up",
            "upset",
            "let down",
            "irritated",
            "exasperated",
            "gutted",
            "unimpressed",
            "cross",
            "miffed",
            "displeased",
            "dismayed",
            "sick and tired",
            "worn out by this",
        ),
        "pos_adj": (
            "happy",
            "pleased",
            "impressed",
            "grateful",
            "relieved",
            "delighted",
            "thrilled",
            "chuffed",
            "satisfied",
            "thankful",
            "glad",
            "made up",
            "over the moon",
            "content",
            "blown away",
            "reassured",
        ),
        "subject": (
            "this",
            "the service",
            "your support",
            "the whole experience",
            "the way this was handled",
            "your customer service",
            "the response",
            "the communication",
            "your team",
        ),
        "neg_q1": (
            "a bit poor",
            "not the best",
            "underwhelming",
            "disappointing",
            "a bit slow",
            "below par",
            "mediocre",
            "sub-par",
            "patchy",
            "a letdown",
        ),
        "neg_q2": (
            "poor",
            "bad",
            "annoying",
            "frustrating",
            "rubbish",
            "shoddy",
            "sloppy",
            "unhelpful",
            "careless",
            "a mess",
        ),
        "neg_q3": (
            "unacceptable",
            "ridiculous",
            "shocking",
            "pathetic",
            "a shambles",
            "a nightmare",
            "dreadful",
            "appalling",
            "disgraceful",
            "laughable",
            "outrageous",
            "atrocious",
            "diabolical",
            "beyond a joke",
        ),
        "pos_q1": (
            "fine",
            "decent",
            "okay",
            "alright",
            "solid",
            "reasonable",
            "satisfactory",
            "acceptable",
            "not too shabby",
            "perfectly adequate",
        ),
        "pos_q2": (
            "great",
            "really good",
            "helpful",
            "efficient",
            "quick",
            "smooth",
            "friendly",
            "reliable",
            "impressive",
            "a pleasure",
        ),
        "pos_q3": (
            "excellent",
            "brilliant",
            "superb",
            "outstanding",
            "first class",
            "top notch",
            "fantastic",
            "faultless",
            "exceptional",
            "phenomenal",
            "second to none",
            "flawless",
        ),
        "k": ("three", "four", "five", "six", "several", "two"),
        "name": (
            "Sam",
            "Priya",
            "Tom",
            "Aisha",
            "Marco",
            "Chen",
            "Fatima",
            "Olu",
            "Grace",
            "Lukas",
            "Hannah",
            "Diego",
            "Mei",
            "Ravi",
            "Zoe",
            "Kwame",
        ),
    }
)
_SLOT_ALIASES: Mapping[str, str] = MappingProxyType({"product2": "product", "name2": "name"})

_INTENT_TEXT: Mapping[str, _IntentText] = MappingProxyType(
    {
        "billing": _IntentText(
            problems=(
                "I was charged twice for my {product}",
                "there's a charge of {amount} on my statement I don't recognise",
                "my invoice for {month} shows {amount} instead of {amount2}",
                "the discount code wasn't applied and I paid full price",
                "my subscription renewed at a higher price than advertised",
                "I was billed {amount} after my free trial ended",
                "the VAT on my last invoice looks wrong",
                "a payment of {amount} was taken on {date} without warning",
                "I cancelled last month but you still charged me {amount}",
                "I was charged for delivery even though it was meant to be free",
            ),
            requests=(
                "could you explain the {amount} charge on my last invoice",
                "how do I update the card you have on file",
                "can I get a copy of my invoice for {month}",
                "when will my next payment be taken",
                "can I switch to annual billing",
                "which payment methods do you accept",
                "could you send a VAT receipt for my {product}",
                "why does my statement show a pending payment of {amount}",
                "why was I charged again after I cancelled",
                "can you refund the extra {amount} you charged me",
            ),
            wins=(
                "the billing team corrected my invoice within {duration}",
                "the double charge was reversed straight away",
                "switching to annual billing saved me {amount}",
                "my invoice for {month} was clear and easy to read",
                "paying by instalments for the {product} was simple",
            ),
        ),
        "delivery": _IntentText(
            problems=(
                "my {product} hasn't arrived and it's been {duration}",
                "the tracking hasn't updated since {date}",
                "the courier marked my parcel as delivered but nothing came",
                "my parcel was left outside in the rain",
                "the box arrived crushed and the {product} inside was damaged",
                "the delivery was due on {date} and it's still not here",
                "I got someone else's parcel instead of my {product}",
                "the driver never turned up during the delivery slot",
                "my order says dispatched but the courier has no record of it",
                "the courier delivered my order to my old address",
            ),
            requests=(
                "could you tell me when my {product} will arrive",
                "can you check where my parcel is",
                "do you deliver on weekends",
                "can I choose a delivery slot for {day}",
                "how much is next-day delivery",
                "can the courier leave the parcel with a neighbour",
                "which courier do you use for deliveries",
                "is there a tracking link for my {product}",
                "will I get a refund if the parcel is returned to sender",
            ),
            wins=(
                "my {product} arrived a day early",
                "the courier was friendly and careful with the parcel",
                "the parcel came within {duration} even over the holidays",
                "the tracking was spot on the whole way",
                "the delivery driver called ahead, which really helped",
            ),
        ),
        "refund": _IntentText(
            problems=(
                "I returned the {product} on {date} and still haven't had my refund",
                "my refund of {amount} was approved but never reached my account",
                "you refunded {amount} instead of {amount2}",
                "I was told the refund would take {duration} and it's been longer",
                "the refund went to an old card I no longer use",
                "my return was received on {date} but the refund is still pending",
                "half of my refund for the {product} is missing",
                "I cancelled my order on {date} and I want my money back",
                "I was charged for the {product} I sent back weeks ago",
            ),
            requests=(
                "how long does a refund usually take",
                "can you confirm you received my returned {product}",
                "could you check the status of my refund",
                "can the refund go to store credit instead",
                "what's the return window for the {product}",
                "do I get a refund on the delivery charge as well",
                "can I get my money back if the {product} is unopened",
                "will I be refunded for the late delivery",
                "do I get my money back if I cancel now",
            ),
            wins=(
                "my refund of {amount} landed within {duration}",
                "the refund was processed the same day",
                "returning the {product} and getting my money back was painless",
                "the refund showed up on my card before I even asked",
            ),
        ),
        "account_access": _IntentText(
            problems=(
                "I can't log in to my account",
                "the password reset email never arrives",
                "my account got locked after {k} attempts",
                "the two-factor code isn't being sent to my phone",
                "it says my email isn't registered even though I've used it for years",
                "I was logged out and now my saved details are gone",
                "the login page keeps saying my password is wrong",
                "I can't sign in to the app since the last update",
                "I'm locked out so I can't see my orders or invoices",
            ),
            requests=(
                "how do I reset my password",
                "can I change the email address on my account",
                "how do I turn on two-factor authentication",
                "could you unlock my account",
                "can I merge my two accounts",
                "how do I add a second user to my login",
                "where do I change my username",
                "how do I see my order history if I'm locked out",
            ),
            wins=(
                "I got back into my account within {duration}",
                "the password reset worked first time",
                "support unlocked my account in minutes",
                "setting up two-factor login was really easy",
            ),
        ),
        "technical_issue": _IntentText(
            problems=(
                "the app crashes every time I open {feature}",
                "the website shows an error when I get to {feature}",
                "the {device} won't connect to the wifi",
                "the {device} stopped working after the latest update",
                "the page just keeps loading on my phone",
                "notifications stopped working in the app",
                "the {device} keeps restarting on its own",
                "the app freezes as soon as I tap {feature}",
                "the app logs me out every few minutes",
                "the checkout page won't accept my card",
                "the app won't let me save a new delivery address",
            ),
            requests=(
                "which app version supports {feature}",
                "how do I pair the {device} with my phone",
                "is there a firmware update for the {device}",
                "does the app work on tablets",
                "how do I clear the app cache",
                "how do I factory reset the {device}",
                "is there a known bug with {feature}",
            ),
            wins=(
                "the update fixed the crashing",
                "the troubleshooting steps got the {device} working again",
                "the new version of the app is much faster",
                "the firmware update sorted out the connection problem on my {device}",
            ),
        ),
        "cancellation": _IntentText(
            problems=(
                "I cancelled my subscription on {date} but it's still active",
                "there's no cancel button anywhere in the app",
                "I asked to cancel {duration} ago and I'm still being charged",
                "I was told I can't cancel until the contract ends",
                "my {plan} plan renewed even though I cancelled it",
                "the cancellation form just loops back to the start",
                "I want to cancel my order for the {product} and get a refund",
                "I can't log in to cancel my account",
            ),
            requests=(
                "how do I cancel my {plan} plan",
                "can I pause my subscription instead of cancelling",
                "will I lose my data if I cancel",
                "is there a fee to cancel early",
                "can I cancel my order before it ships",
                "could you cancel my membership from the end of {month}",
                "how do I cancel and get a refund for this month",
            ),
            wins=(
                "cancelling my {plan} plan took two minutes",
                "the agent cancelled everything without any hassle",
                "you made cancelling my membership really straightforward",
                "my subscription was cancelled the same day I asked",
            ),
        ),
        "product_question": _IntentText(
            problems=(
                "the {product} is smaller than the description says",
                "the {product} doesn't have the feature that was advertised",
                "the colour of the {product} is nothing like the photos",
                "the manual for the {product} is missing half the steps",
                "the {product} is out of stock again",
                "the battery on the {device} lasts nowhere near what the listing says",
            ),
            requests=(
                "is the {device} compatible with {compat}",
                "does the {product} come with a warranty",
                "what size is the {product} exactly",
                "when will the {product} be back in stock",
                "is the {product} available in other colours",
                "what's the difference between the {product} and the {product2}",
                "how long does the battery on the {device} last",
                "does the {product} arrive assembled",
                "can I return the {product} if it doesn't fit",
                "does the {product} come with free delivery",
            ),
            wins=(
                "the {product} is exactly as described",
                "the {product} is even better than the photos",
                "the size guide for the {product} was spot on",
                "the {device} works perfectly with {compat}",
            ),
        ),
        "order_change": _IntentText(
            problems=(
                "I tried to change the delivery address on my order and it wouldn't let me",
                "I asked to swap the {product} for a different size and nothing happened",
                "I added an item to my order and it was ignored",
                "my order was changed without anyone asking me",
                "the order still shows the old address after I updated it",
                "I asked to remove the {product} from my order but it was still sent",
                "I changed the delivery date on my order and the courier came anyway",
            ),
            requests=(
                "can I change the delivery address on my order",
                "could I swap the {product} for a different colour",
                "is it too late to add another item to my order",
                "can I change the size of the {product} I ordered",
                "can I combine two orders into one shipment",
                "can I take the {product2} off my order",
                "can I upgrade the delivery on my order to next-day",
            ),
            wins=(
                "you updated my delivery address straight away",
                "swapping the {product} for a bigger size was easy",
                "the changes to my order went through instantly",
                "adding the {product} to my existing order was simple",
            ),
        ),
        "feedback": _IntentText(
            problems=(
                "your website is hard to find anything on",
                "the new app layout hides the order history",
                "I was on hold for over an hour last time I called",
                "I keep getting survey emails after every purchase",
                "your stores never have staff on the tills",
                "the loyalty points scheme was changed without notice",
                "the app update made it harder to find the checkout",
                "your delivery driver was rude to my neighbour",
                "the refund process takes far too long",
                "the checkout keeps timing out and someone should fix it",
            ),
            requests=(
                "I'd like to suggest adding a dark mode to the app",
                "is there somewhere I can leave a review",
                "could you add an option for paperless invoices",
                "who should I contact with a suggestion about the website",
                "would you consider longer opening hours for live chat",
                "can I give feedback about a member of staff",
            ),
            wins=(
                "your team has been great over the years",
                "the new website is much easier to use",
                "the loyalty scheme is a nice touch",
                "your staff at the store on {date} were lovely",
                "I just wanted to say how smooth shopping with you has been",
            ),
        ),
    }
)

# Follow-ups carry no topic words on purpose: see _FOLLOW_UP_RATE.
_FOLLOW_UPS: tuple[str, ...] = (
    "this is about the ticket I opened on {date}",
    "following up on my chat with {agent}",
    "re my email from {date}",
    "about my case from last week",
    "following up on the conversation I had via {channel}",
    "further to my previous message",
    "I'm writing again about the issue from {date}",
)

# Sentiment, by family.  Each entry maps intensity (1 mild .. 3 strong) to phrasings.
_ADVERBS: Mapping[str, Mapping[int, tuple[str, ...]]] = MappingProxyType(
    {
        "negative": {
            1: ("a bit", "a little", "slightly", "somewhat"),
            2: ("really", "very", "so", "genuinely"),
            3: ("extremely", "absolutely", "incredibly", "utterly"),
        },
        "positive": {
            1: ("quite", "fairly", "reasonably", "pretty"),
            2: ("really", "very", "so", "genuinely"),
            3: ("extremely", "absolutely", "incredibly", "thoroughly"),
        },
    }
)
_ADJECTIVES: Mapping[str, str] = MappingProxyType({"negative": "neg_adj", "positive": "pos_adj"})
_ADJECTIVE_FRAMES: tuple[str, ...] = (
    "I'm {adv} {adj}",
    "honestly I'm {adv} {adj}",
    "I have to say I'm {adv} {adj}",
    "I am {adv} {adj} with this",
    "we're {adv} {adj}",
)
_FIXED: Mapping[str, Mapping[int, tuple[str, ...]]] = MappingProxyType(
    {
        "negative": {
            1: ("it's a bit disappointing", "I expected better", "it's a bit of a pain", "that's a shame"),
            2: (
                "this has been a real hassle",
                "this is poor service",
                "this is really annoying",
                "I'm sick of chasing this",
            ),
            3: (
                "this is absolutely unacceptable",
                "this is the worst service I've ever had",
                "this is a complete joke",
                "I'm never ordering from you again",
                "this is a disgrace",
                "I'm furious",
            ),
        },
        "positive": {
            1: ("pretty decent overall", "it did the job", "that works for me", "fair enough, that's fine"),
            2: ("great job", "much appreciated", "that was really helpful", "thanks so much"),
            3: (
                "absolutely brilliant",
                "you made my day",
                "best support I've ever had",
                "I'm over the moon",
                "amazing service",
            ),
        },
    }
)
# "<subject> is <quality>": the quality word carries the intensity.
_QUALITY: Mapping[str, Mapping[int, tuple[str, ...]]] = MappingProxyType(
    {
        "negative": {
            1: ("{subject} is {neg_q1}", "{subject} has been {neg_q1}", "honestly, {subject} was {neg_q1}"),
            2: ("{subject} is {neg_q2}", "{subject} has been {neg_q2}", "I think {subject} was {neg_q2}"),
            3: ("{subject} is {neg_q3}", "{subject} has been {neg_q3}", "frankly, {subject} is {neg_q3}"),
        },
        "positive": {
            1: ("{subject} is {pos_q1}", "{subject} has been {pos_q1}", "honestly, {subject} was {pos_q1}"),
            2: ("{subject} is {pos_q2}", "{subject} has been {pos_q2}", "I think {subject} was {pos_q2}"),
            3: ("{subject} is {pos_q3}", "{subject} has been {pos_q3}", "frankly, {subject} is {pos_q3}"),
        },
    }
)
# Negated phrasings: the same words ("not", "happy", "bad", "problem") land on both
# sides, so single words stop deciding the class and word order starts to matter.
_NEGATED: Mapping[str, Mapping[int, tuple[str, ...]]] = MappingProxyType(
    {
        "negative": {
            1: (
                "that's not ideal",
                "that isn't great",
                "I'm not thrilled",
                "it's not quite right",
                "I'm not entirely {pos_adj}",
                "I'm not overly {pos_adj}",
            ),
            2: (
                "this is not good enough",
                "I'm not {pos_adj}",
                "I'm really not {pos_adj}",
                "this is not okay",
                "I'm not {pos_adj} with how this went",
            ),
            3: (
                "I'm not {pos_adj} about this at all",
                "I'm not {pos_adj} in the slightest",
                "this is not acceptable in any way",
                "I'm not remotely {pos_adj}",
            ),
        },
        "positive": {
            1: (
                "not bad at all",
                "I can't complain",
                "no real issues",
                "not too bad",
                "no major problems",
                "I was worried for nothing",
                "I'm not {neg_adj}",
                "I'm not too {neg_adj}",
            ),
            2: (
                "no complaints whatsoever",
                "I can't fault it",
                "I'm not {neg_adj} at all",
                "no problems at all",
                "it wasn't a hassle at all",
                "I'm not remotely {neg_adj}",
            ),
            3: (
                "I couldn't be happier",
                "it couldn't have gone better",
                "I can't thank you enough",
                "not a single problem, brilliant",
                "I expected the worst and it was anything but",
            ),
        },
    }
)
# Complaints that borrow praise words: "great, another delay".
_SARCASM: Mapping[str, Mapping[int, tuple[str, ...]]] = MappingProxyType(
    {
        "negative": {
            2: (
                "great, another delay",
                "fantastic, just what I needed",
                "love waiting on hold for an hour",
                "oh perfect, it's broken again",
                "wonderful, yet another broken promise",
                "so much for fast and easy",
                "I was hoping for better, thanks",
            ),
            3: (
                "brilliant, thanks for absolutely nothing",
                "amazing how nobody can give a straight answer",
                "great job losing my order, really impressive",
                "oh fantastic, the best service ever, not",
            ),
        },
    }
)
# Complaints and praise about a side aspect, handy in mixed messages.
_ASPECTS: Mapping[str, Mapping[int, tuple[str, ...]]] = MappingProxyType(
    {
        "negative": {
            1: ("the wait was a bit long", "the packaging was a bit flimsy", "the app is a little clunky"),
            2: (
                "the whole process was a real hassle",
                "nobody bothered to update me",
                "I had to chase it far too many times",
            ),
            3: (
                "the way this was handled is a disgrace",
                "your communication has been appalling",
                "the service overall has been dreadful",
            ),
        },
        "positive": {
            1: ("the agent was polite", "the delivery was quick enough", "the app is okay"),
            2: ("{agent} was really helpful", "your chat team was lovely", "the product itself is great"),
            3: (
                "the product itself is fantastic",
                "I've always loved shopping with you",
                "{agent} was absolutely wonderful",
            ),
        },
    }
)
# Negative without a single emotion word: the frustration is in the repetition or in
# a rhetorical question, which looks like a neutral request to a bag of words.
_IMPLICIT_NEGATIVE: tuple[str, ...] = (
    "this is the third time I've asked",
    "still waiting",
    "nobody has got back to me",
    "I've been promised a call back {k} times now",
    "I'm still chasing this after {duration}",
    "what exactly am I paying for?",
    "is anyone actually reading these messages?",
    "how many more times do I have to ask?",
    "I shouldn't have to keep asking",
    "why is this so difficult?",
    "I'd like this resolved, again",
)
# Remarks that keep a request neutral while borrowing words from both polarities.
_NEUTRAL_ASIDES: tuple[str, ...] = (
    "not sure if that's normal",
    "it's probably nothing",
    "hopefully it's an easy one",
    "it's not a big deal",
    "no problem if not",
    "either way is fine",
    "just checking",
    "it's not urgent",
    "I'd be happy with either option",
    "that would be great",
    "it's not a problem, I'm just curious",
    "I'm not in a hurry",
    "any update would be great",
)
# Reported opinions inside neutral requests: polar words, no feeling of the writer's own.
_HEARSAY: tuple[str, ...] = (
    "a friend told me the {product} is {{q}}",
    "I read a review saying the {product} is {{q}}",
    "my partner says your service is {{q}}",
    "someone on a forum said the {product} was {{q}}",
    "my neighbour reckons the {product} is {{q}}",
)
# Polite lead-ins to a complaint: praise words ("appreciate", "thanks") in negative text.
_SOFTENERS: tuple[str, ...] = (
    "I appreciate you're busy, but",
    "no offence to your team, but",
    "I know it's not your fault, but",
    "thanks for getting back to me, but",
    "I'm sure you're doing your best, but",
    "with respect,",
)
_EMOJIS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"negative": ("😠", "🙄", "😞", "😤"), "positive": ("😊", "👍", "🙌", "🙂")}
)

_OPENERS: tuple[str, ...] = (
    "",
    "",
    "",
    "Hi,",
    "Hello,",
    "Hello team,",
    "Hi there,",
    "Hey,",
    "@ShopCo",
    "Dear support,",
    "Good morning,",
    "Good afternoon,",
    "To whom it may concern,",
    "Hi {name},",
    "Hiya,",
)
_CLOSERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "any": (
            "",
            "",
            "",
            "Thanks.",
            "Regards, {name}",
            "Cheers, {name}",
            "Sent from my iPhone",
            "- {name}",
            "Thank you.",
            "Kind regards, {name}",
        ),
        "negative": (
            "Please sort this out today.",
            "I expect a reply within {duration}.",
            "I want this fixed now.",
            "Please escalate this.",
            "I need an answer by {day}.",
        ),
        # Politeness borrows sentiment words ("grateful", "great", "happy") without
        # carrying sentiment, as real requests do.
        "neutral": (
            "Thanks in advance.",
            "No rush.",
            "Whenever you get a moment.",
            "Let me know if you need anything else from me.",
            "I'd be grateful for any help.",
            "Happy to send photos if that helps.",
            "No worries if not.",
            "Thanks so much in advance.",
            "Great, thanks.",
            "Perfect, thanks in advance.",
            "Sorry to bother you.",
            "Hope you're well.",
            "Sorry if this is a silly question.",
        ),
        "positive": (
            "Keep it up!",
            "Thanks again.",
            "I'll be recommending you to friends.",
            "Will definitely order again.",
        ),
    }
)
_QUESTION_WRAPS: tuple[str, ...] = (
    "{q}?",
    "Quick question: {q}?",
    "Just wondering, {q}?",
    "Please could you tell me, {q}?",
    "I'd like to know: {q}?",
    "When you get a chance, {q}?",
    "{q}, please?",
)
# History sentences for long messages.  Plain facts are shared by every sentiment so
# that the story itself does not give the label away; only the ending differs.
_HISTORY: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "facts": (
            "I first contacted you about this on {date}",
            "I was told on {channel} that it would be sorted within {duration}",
            "I placed the order on {date}",
            "I've been a customer for a few years",
            "I spoke to {agent} via {channel} on {date}",
            "I checked your help centre first",
            "I'm asking on behalf of my mum, who has the account",
            "last week someone said it had been escalated",
        ),
        "negative": (
            "since then I've called {k} times",
            "each time I get passed to a different person",
            "{agent} promised a call back that never came",
            "I've already explained all of this twice by {channel}",
            "it's now been {duration} and nothing has changed",
        ),
        "neutral": (),
        "positive": (
            "{agent} picked it up straight away",
            "they kept me updated the whole way",
            "it was all sorted within {duration}",
            "{agent} fixed it on the spot",
            "it got resolved the same day",
        ),
    }
)
_ASIDES: tuple[str, ...] = ("Separately,", "Also,", "While I'm here,", "On another note,")
_CONTRASTS: tuple[str, ...] = ("{a}, but {b}", "{a}. However, {b}", "{a}. That said, {b}", "{a} but {b}")

_PII_FORMS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "email": ("You can reach me at {v}.", "My email is {v}.", "Please reply to {v}.", "Registered email: {v}."),
        "phone": ("Call me on {v}.", "My number is {v}.", "Best to text {v}.", "Phone: {v}."),
        "account": ("It's {v}.", "My details: {v}.", "This is about {v}.", "Ref {v}."),
        "order": ("Order number {v}.", "This is about order {v}.", "The order ref is {v}.", "Order: {v}."),
        "card": ("The card I used was {v}.", "It went on card {v}."),
    }
)
_PII_KINDS: tuple[str, ...] = ("email", "phone", "account", "order", "card")
_PII_WEIGHTS: tuple[float, ...] = (0.28, 0.24, 0.2, 0.24, 0.04)


# --------------------------------------------------------------------------- pure helpers


def _index(rng: np.random.Generator, n: int, low: int = 0) -> int:
    """Return a uniform integer in ``[low, low + n)``, e.g. ``(rng, 3)`` -> ``2``.

    ``rng.random()`` is several times faster than ``rng.integers`` for one scalar,
    and generating is dominated by such draws.
    """
    return low + int(rng.random() * n)


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    """Return one option chosen uniformly, e.g. ``("a", "b")`` -> ``"b"``."""
    return options[_index(rng, len(options))]


def _weighted(rng: np.random.Generator, weights: Sequence[float]) -> int:
    """Return an index drawn with the given weights (summing to 1), e.g. ``(0.9, 0.1)`` -> ``0``."""
    u, total = rng.random(), 0.0
    for i, w in enumerate(weights):
        total += w
        if u < total:
            return i
    return len(weights) - 1


def _amount(rng: np.random.Generator) -> str:
    """Return a price-like string, e.g. ``"$49.99"`` or ``"£120.00"``."""
    currency = _pick(rng, ("$", "£", "€"))
    return f"{currency}{_index(rng, 395, low=5)}.{_pick(rng, ('00', '99', '49', '50'))}"


def _slot(rng: np.random.Generator, name: str) -> str:
    """Return a value for template slot ``name``, e.g. ``"duration"`` -> ``"two weeks"``."""
    if name.startswith("amount"):
        return _amount(rng)
    return _pick(rng, _SLOTS[_SLOT_ALIASES.get(name, name)])


def _fill(rng: np.random.Generator, template: str) -> str:
    """Fill every ``{slot}`` of a template, e.g. ``"my {product}"`` -> ``"my blender"``."""
    names = {field for _, field, _, _ in string.Formatter().parse(template) if field}
    values = {name: _slot(rng, name) for name in sorted(names)}
    if "amount" in values and "amount2" in values:  # one currency per sentence: "$40 instead of $45"
        values["amount2"] = values["amount"][0] + values["amount2"][1:]
    return template.format(**values)


def _sentence(text: str, end: str = ".") -> str:
    """Capitalise and punctuate a clause, e.g. ``"hi there"`` -> ``"Hi there."``."""
    text = text.strip()
    if not text:
        return ""
    if text[-1] not in ".!?":
        text += end
    return text[0].upper() + text[1:]


def _decap(text: str) -> str:
    """Lower-case the first letter unless it starts the pronoun I, e.g. ``"The x"`` -> ``"the x"``."""
    if text.startswith(("I ", "I'")) or not text:
        return text
    return text[0].lower() + text[1:]


def _is_protected(token: str) -> bool:
    """Tell whether typos must not touch a token, e.g. ``"ORD-2024-558812"`` -> ``True``.

    Every PII value holds a digit or an ``@``, so this one rule keeps emails, phone,
    account, order and card numbers intact (and amounts, which is harmless).
    """
    return "@" in token or any(ch.isdigit() for ch in token)


def _typo(rng: np.random.Generator, word: str) -> str:
    """Apply one letter swap, drop or doubling, e.g. ``"refund"`` -> ``"refnud"``."""
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    if len(letters) < 3:
        return word
    op, i = _index(rng, 3), letters[_index(rng, len(letters) - 1)]
    chars = list(word)
    if op == 0 and chars[i + 1].isalpha() and chars[i] != chars[i + 1]:
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    elif op == 1:
        del chars[i]
    else:
        chars.insert(i, chars[i])
    return "".join(chars)


def _add_typos(rng: np.random.Generator, text: str, rate: float) -> str:
    """Give each unprotected word a typo with probability ``rate``; spacing is kept.

    Example: ``"my parcel is late"`` at rate 1.0 -> ``"my pacrel si latte"``.
    """
    tokens = text.split(" ")
    hits = rng.random(len(tokens)) < rate
    out = [_typo(rng, t) if hit and not _is_protected(t) else t for t, hit in zip(tokens, hits, strict=True)]
    return " ".join(out)


def _casual(text: str) -> str:
    """Lower-case everything except protected tokens, e.g. ``"Hi Sam, ORD-1"`` -> ``"hi sam, ORD-1"``."""
    return " ".join(t if _is_protected(t) else t.lower() for t in text.split(" "))


def _dominant_sentiment(clauses: Sequence[_Clause]) -> str:
    """Label a mixed message from its sentiment clauses.

    Rule: the clause with the highest intensity wins; on a tie the later clause
    wins, because a contrast ("..., but ...") puts the weight on what follows it.
    Example: ``[pos 2, neg 2]`` -> ``"negative"``; ``[neg 1, pos 3]`` -> ``"positive"``.
    """
    best = clauses[0]
    for clause in clauses[1:]:
        if clause.intensity >= best.intensity:
            best = clause
    return best.sentiment


# --------------------------------------------------------------------------- PII values


def _digits(rng: np.random.Generator, k: int) -> str:
    """Return ``k`` random digits, e.g. ``3`` -> ``"042"``."""
    return "".join(str(d) for d in rng.integers(0, 10, size=k))


def _email(rng: np.random.Generator) -> str:
    """Return a fake address on a reserved domain, e.g. ``"priya.k42@example.org"``."""
    first, last = _pick(rng, _SLOTS["name"]).lower(), _pick(rng, ("smith", "k", "lee", "osei", "ng"))
    local = _pick(rng, (f"{first}.{last}", f"{first}{_digits(rng, 2)}", f"{first}_{last}"))
    return f"{local}@{_pick(rng, ('example.com', 'example.org'))}"


def _phone(rng: np.random.Generator) -> str:
    """Return a fictional phone number, e.g. ``"(555) 123 4567"`` or ``"07700 900123"``."""
    a, b, c = _digits(rng, 3), _digits(rng, 4), _digits(rng, 3)
    forms = (f"+1 555-{a}-{b}", f"(555) {a} {b}", f"07700 900{c}", f"555.{a}.{b}", f"+44 7700 900{c}")
    return _pick(rng, forms)


def _account(rng: np.random.Generator) -> str:
    """Return an account reference, e.g. ``"account 12345678"`` or ``"acct #AC-99812"``."""
    forms = (f"account {_digits(rng, 8)}", f"acct #AC-{_digits(rng, 5)}", f"account no. {_digits(rng, 8)}")
    return _pick(rng, forms)


def _order(rng: np.random.Generator) -> str:
    """Return an order reference, e.g. ``"#A1B2C3D4"`` or ``"ORD-2024-558812"``."""
    code = "".join(f"{_pick(rng, string.ascii_uppercase)}{d}" for d in _digits(rng, 4))
    return _pick(rng, (f"#{code}", f"ORD-{_index(rng, 4, low=2022)}-{_digits(rng, 6)}"))


def _card(rng: np.random.Generator) -> str:
    """Return a well-known test card number, e.g. ``"4111 1111 1111 0427"``."""
    return f"{_pick(rng, ('4111 1111 1111', '5555 5555 5555'))} {_digits(rng, 4)}"


def _pii_sentence(rng: np.random.Generator) -> str:
    """Return a sentence carrying one PII value, e.g. ``"My email is sam.ng@example.com."``."""
    kind = _PII_KINDS[_weighted(rng, _PII_WEIGHTS)]
    makers = {"email": _email, "phone": _phone, "account": _account, "order": _order, "card": _card}
    return _pick(rng, _PII_FORMS[kind]).format(v=makers[kind](rng))


# --------------------------------------------------------------------------- clauses


def _intensity(rng: np.random.Generator, low: int = 1, high: int = 3) -> int:
    """Return an intensity in ``[low, high]``, e.g. ``(1, 3)`` -> ``2``."""
    return _index(rng, high - low + 1, low=low)


def _eval_clause(rng: np.random.Generator, sentiment: str, intensity: int, aspects: bool = False) -> _Clause:
    """Return a clause expressing ``sentiment`` at ``intensity``.

    Families, picked uniformly among those that have this sentiment and intensity:
    adverb+adjective ("really frustrated"), fixed phrases, negations ("not bad at
    all"), side-aspect remarks (only if ``aspects``; they need a contrast to read
    well) and, for negative at intensity 2-3, sarcasm.
    Example: ``("negative", 3)`` -> ``_Clause("this is a disgrace", "negative", 3)``.
    """
    # Negation and sarcasm are listed twice: they are where word counts mislead most.
    families = (_FIXED, _QUALITY, _NEGATED, _NEGATED, _SARCASM, _SARCASM) + ((_ASPECTS,) if aspects else ())
    pools = [f[sentiment][intensity] for f in families if intensity in f.get(sentiment, {})]
    choice = _index(rng, len(pools) + 1)
    if choice < len(pools):
        return _Clause(_fill(rng, _pick(rng, pools[choice])), sentiment, intensity)
    frame, adv = _pick(rng, _ADJECTIVE_FRAMES), _pick(rng, _ADVERBS[sentiment][intensity])
    adjective = _slot(rng, _ADJECTIVES[sentiment])
    return _Clause(frame.format(adv=adv, adj=adjective), sentiment, intensity)


def _with_emoji(rng: np.random.Generator, text: str, sentiment: str) -> str:
    """Rarely append an emoji matching the sentiment, e.g. ``"Great job."`` -> ``"Great job. 👍"``."""
    if sentiment == "neutral" or rng.random() >= _EMOJI_RATE:
        return text
    return f"{text} {_pick(rng, _EMOJIS[sentiment])}"


def _feeling(rng: np.random.Generator, sentiment: str) -> str:
    """Return a sentence saying how the customer feels, e.g. ``"I'm really annoyed."``."""
    clause = _eval_clause(rng, sentiment, _intensity(rng))
    text = clause.text
    if sentiment == "negative" and rng.random() < 0.25:
        text = f"{_pick(rng, _SOFTENERS)} {_decap(text)}"
    text = _sentence(text, "!" if clause.intensity == 3 else ".")
    return _with_emoji(rng, text, sentiment)


def _question(rng: np.random.Generator, intent: str) -> str:
    """Return a neutral question, e.g. ``"Quick question: do you deliver on weekends?"``."""
    q = _fill(rng, _pick(rng, _INTENT_TEXT[intent].requests))
    return _sentence(_pick(rng, _QUESTION_WRAPS).format(q=q))


def _topic(rng: np.random.Generator, intent: str, kind: str) -> str:
    """Return a filled problem or win sentence, e.g. ``"The tracking hasn't updated since Monday."``."""
    phrases = _INTENT_TEXT[intent]
    return _sentence(_fill(rng, _pick(rng, phrases.problems if kind == "problem" else phrases.wins)))


def _history(rng: np.random.Generator, sentiment: str, k: int) -> list[str]:
    """Return ``k`` history sentences: shared facts, then an ending of ``sentiment`` if it has one.

    Example: ``("positive", 2)`` -> ``["I placed the order on Monday.", "It got resolved the same day."]``.
    """
    endings, facts = _HISTORY[sentiment], _HISTORY["facts"]
    n_facts = k - 1 if endings else k
    picks = [facts[int(i)] for i in rng.choice(len(facts), size=n_facts, replace=False)]
    if endings:
        picks.append(_pick(rng, endings))
    return [_sentence(_fill(rng, p)) for p in picks]


def _aside(rng: np.random.Generator, intent: str) -> str:
    """Return a secondary question or problem of another intent, e.g. ``"Also, can I pause my plan?"``."""
    other = _INTENT_TEXT[_pick(rng, [i for i in INTENTS if i != intent])]
    if rng.random() < 0.5:
        return f"{_pick(rng, _ASIDES)} {_fill(rng, _pick(rng, other.requests))}?"
    return f"{_pick(rng, _ASIDES)} {_fill(rng, _pick(rng, other.problems))}."


def _hearsay(rng: np.random.Generator) -> str:
    """Return someone else's opinion, reported flatly, e.g. ``"A friend said the kettle is superb."``."""
    polarity, strength = _pick(rng, ("neg", "pos")), _intensity(rng)
    return _sentence(_fill(rng, _pick(rng, _HEARSAY)).format(q=_slot(rng, f"{polarity}_q{strength}")))


# --------------------------------------------------------------------------- bodies


def _opening(rng: np.random.Generator, intent: str, kind: str) -> str:
    """Return the sentence that states the topic, or a topic-free follow-up now and then."""
    if rng.random() < _FOLLOW_UP_RATE:
        return _sentence(_fill(rng, _pick(rng, _FOLLOW_UPS)))
    return _topic(rng, intent, kind)


def _negative_body(rng: np.random.Generator, intent: str, long: bool) -> list[str]:
    """Sentences of a complaint: problem, optional history, how the customer feels."""
    body = [_opening(rng, intent, "problem")]
    if long:
        body += _history(rng, "negative", _intensity(rng, 2, 4))
    if rng.random() < 0.3:
        body.append(_sentence(_fill(rng, _pick(rng, _IMPLICIT_NEGATIVE))))
    else:
        body.append(_feeling(rng, "negative"))
    if rng.random() < 0.3:  # complaints often end with the same questions neutral messages ask
        body.append(_question(rng, intent))
    if rng.random() < 0.2:
        body.append(_fill(rng, _pick(rng, _CLOSERS["negative"])))
    return body


def _neutral_body(rng: np.random.Generator, intent: str, long: bool) -> list[str]:
    """Sentences of a plain request: optional factual context, then the question."""
    body: list[str] = []
    if rng.random() < 0.5:  # problems stated as facts, without emotional charge
        body.append(_opening(rng, intent, "problem"))
    if long:
        body += _history(rng, "neutral", _intensity(rng, 1, 3))
    if rng.random() < 0.15:
        body.append(_hearsay(rng))
    body.append(_question(rng, intent))
    if rng.random() < 0.35:
        body.append(_sentence(_pick(rng, _NEUTRAL_ASIDES)))
    if rng.random() < 0.35:
        body.append(_fill(rng, _pick(rng, _CLOSERS["neutral"])))
    return body


def _positive_body(rng: np.random.Generator, intent: str, long: bool) -> list[str]:
    """Sentences of praise: what went well (or a problem that got fixed), then thanks."""
    resolved = long or rng.random() < 0.55
    body = [_opening(rng, intent, "problem" if resolved else "win")]
    told_fix = long or (resolved and rng.random() < 0.5)
    if told_fix:
        body += _history(rng, "positive", _intensity(rng, 2, 4) if long else 1)
    if rng.random() < 0.85 or (resolved and not told_fix):  # a bare problem is not praise
        body.append(_feeling(rng, "positive"))
    if rng.random() < 0.2:
        body.append(_fill(rng, _pick(rng, _CLOSERS["positive"])))
    return body


def _mixed_clauses(rng: np.random.Generator, target: str) -> tuple[_Clause, _Clause]:
    """Return two opposite clauses, in order, whose dominant sentiment is ``target``."""
    other = "positive" if target == "negative" else "negative"
    target_last = rng.random() < 0.5
    strong = _intensity(rng, 1 if target_last else 2)
    weak = _intensity(rng, 1, strong if target_last else strong - 1)  # see _dominant_sentiment
    first, last = (other, weak), (target, strong)
    if not target_last:
        first, last = last, first
    return _eval_clause(rng, *first, aspects=True), _eval_clause(rng, *last, aspects=True)


def _mixed_body(rng: np.random.Generator, intent: str, target: str, long: bool) -> tuple[list[str], str]:
    """Sentences of a mixed message and its label from :func:`_dominant_sentiment`."""
    a, b = _mixed_clauses(rng, target)
    body = [_opening(rng, intent, "problem" if rng.random() < 0.7 else "win")]
    if long:
        body += _history(rng, target, _intensity(rng, 2, 3))
    body.append(_sentence(_pick(rng, _CONTRASTS).format(a=a.text, b=_decap(b.text))))
    return body, _dominant_sentiment((a, b))


# --------------------------------------------------------------------------- assembly


def _body(rng: np.random.Generator, intent: str, target: str, config: SyntheticConfig) -> tuple[list[str], str]:
    """Return the body sentences and the sentiment label for one message."""
    long = bool(rng.random() < config.long_rate)
    # Only polar messages can be mixed; their conditional rate keeps the overall
    # share at mixed_rate (capped when mixed_rate exceeds the polar share).
    mixed_p = min(1.0, config.mixed_rate / (1.0 - _SENTIMENT_SHARES[1]))
    if target != "neutral" and rng.random() < mixed_p:
        return _mixed_body(rng, intent, target, long)
    builders = {"negative": _negative_body, "neutral": _neutral_body, "positive": _positive_body}
    body = builders[target](rng, intent, long)
    if rng.random() < (_ASIDE_RATE if long else _SHORT_ASIDE_RATE):
        body.insert(_index(rng, len(body), low=1), _aside(rng, intent))
    return body, target


def _add_pii(rng: np.random.Generator, body: list[str], rate: float) -> list[str]:
    """Insert one (sometimes two) PII sentences at random places, with probability ``rate``."""
    if rng.random() >= rate:
        return body
    body = list(body)
    for _ in range(2 if rng.random() < _SECOND_PII_RATE else 1):
        body.insert(_index(rng, len(body) + 1), _pii_sentence(rng))
    return body


def _message(rng: np.random.Generator, body: Sequence[str]) -> str:
    """Wrap body sentences in an opener and a closer, as a single line of text."""
    opener, body = _fill(rng, _pick(rng, _OPENERS)), list(body)
    if opener.endswith(",") and body:  # "Hi, my parcel..." rather than "Hi, My parcel..."
        body[0] = _decap(body[0])
    parts = [opener, *body, _fill(rng, _pick(rng, _CLOSERS["any"]))]
    text = " ".join(p for p in parts if p)
    return _casual(text) if rng.random() < _LOWERCASE_RATE else text


def _balanced(rng: np.random.Generator, labels: Sequence[str], shares: Sequence[float], n: int) -> list[str]:
    """Return ``n`` labels in exact (rounded) ``shares``, shuffled.

    Exact counts rather than independent draws keep small sets balanced too.
    Example: ``(("a", "b"), (0.5, 0.5), 4)`` -> ``["b", "a", "a", "b"]``.
    """
    counts = np.floor(np.asarray(shares) * n).astype(int)
    counts[: n - counts.sum()] += 1  # hand the rounding remainder to the first classes
    pool = np.repeat(np.asarray(labels), counts)
    return [str(x) for x in rng.permutation(pool)]


def generate(config: SyntheticConfig) -> list[SyntheticExample]:
    """Generate labelled customer-service messages.

    Args:
        config: Size, seed and noise rates.

    Returns:
        ``config.n`` examples; the same config always gives the same list.

    Example:
        >>> generate(SyntheticConfig(n=1, seed=3))[0].intent in INTENTS
        True
    """
    rng = np.random.default_rng(config.seed)
    # Typos use their own stream so typo_rate changes spelling only, never content.
    typo_rng = np.random.default_rng(int(rng.integers(2**63)))
    sentiments = _balanced(rng, SENTIMENTS, _SENTIMENT_SHARES, config.n)
    intents = _balanced(rng, INTENTS, [1.0 / len(INTENTS)] * len(INTENTS), config.n)
    examples: list[SyntheticExample] = []
    for target, intent in zip(sentiments, intents, strict=True):
        body, sentiment = _body(rng, intent, target, config)
        text = _message(rng, _add_pii(rng, body, config.pii_rate))
        examples.append(SyntheticExample(_add_typos(typo_rng, text, config.typo_rate), sentiment, intent))
    return examples


def write_csv(examples: Sequence[SyntheticExample], path: Path) -> Path:
    """Write examples as UTF-8 CSV with the header ``text,sentiment,intent``.

    Args:
        examples: Messages to write.
        path: Destination file; missing parent folders are created.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=("text", "sentiment", "intent"))
        writer.writeheader()
        writer.writerows({"text": e.text, "sentiment": e.sentiment, "intent": e.intent} for e in examples)
    return path
