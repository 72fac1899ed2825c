"""Educational value, 0 to 5: an LLM grader through the teacher client (cached like every call),
and a small classifier trained on its grades that scores the rest offline (scikit-learn:
hashing vectorizer of word uni/bigrams + ridge regression)."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

from synthgen.config.workflow import Teacher
from synthgen.engine.parsing import ParseError, judge_score

RUBRIC = """Rate the educational value of the following {kind} for teaching a student, from 0 to 5:
0 = no value (boilerplate, navigation, gibberish), 1 = little, 3 = useful and correct, 5 = excellent
textbook material that explains ideas clearly and shows reasoning.

{text}

Answer in exactly this form:
Score: <0-5>
Reason: <one sentence>"""
EXAMPLE_USER = RUBRIC.format(kind="text", text="Home | About | Contact | Subscribe to our newsletter for deals!")
EXAMPLE_ASSISTANT = "Score: 0\nReason: Site navigation and an advert, nothing to learn."


def judge(seeds: list[dict], teacher: Teacher, cache_dir: Path) -> dict[str, tuple[float, str]]:
    """seed_id -> (score, rationale) for every seed the grader answered usably."""
    return asyncio.run(_judge_all(seeds, teacher, cache_dir))


async def _judge_all(seeds: list[dict], config: Teacher, cache_dir: Path) -> dict[str, tuple[float, str]]:
    import os

    from synthgen.engine.cache import ResponseCache
    from synthgen.engine.teacher import TeacherClient, TeacherRefused

    client = TeacherClient("judge", config, ResponseCache(str(cache_dir)), os.environ.get(config.api_key_env))
    limit = asyncio.Semaphore(config.max_in_flight)

    async def one(seed: dict) -> tuple[str, tuple[float, str] | None]:
        messages = [{"role": "user", "content": EXAMPLE_USER}, {"role": "assistant", "content": EXAMPLE_ASSISTANT},
                    {"role": "user", "content": RUBRIC.format(kind=seed["kind"], text=seed["text"][:4000])}]
        async with limit:
            try:
                completion = await client.chat(messages, temperature=0.0, max_tokens=80)
                return seed["seed_id"], judge_score(completion.text, 0, 5)
            except (ParseError, TeacherRefused):
                return seed["seed_id"], None

    try:
        answers = await asyncio.gather(*(one(seed) for seed in seeds))
    finally:
        await client.close()
    return {seed_id: grade for seed_id, grade in answers if grade is not None}


class Classifier:
    """Predicts the grader's score from the words of a seed; trains in well under a second on
    thousands of seeds and needs no teacher afterwards."""

    def __init__(self, model=None):
        from sklearn.feature_extraction.text import HashingVectorizer

        self.vectorizer = HashingVectorizer(n_features=2**18, ngram_range=(1, 2), alternate_sign=False, norm="l2")
        self.model = model

    def fit(self, texts: list[str], scores: list[float]) -> Classifier:
        from sklearn.linear_model import Ridge

        self.model = Ridge(alpha=1.0).fit(self.vectorizer.transform(texts), scores)
        return self

    def predict(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        return [min(5.0, max(0.0, float(v))) for v in self.model.predict(self.vectorizer.transform(texts))]

    def save(self, path: Path) -> None:
        path.write_bytes(pickle.dumps(self.model))

    @classmethod
    def load(cls, path: Path) -> Classifier:
        return cls(pickle.loads(path.read_bytes()))  # noqa: S301 - a file this tool wrote
