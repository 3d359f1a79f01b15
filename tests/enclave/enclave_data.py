"""Generated datasets for the secure-compute tests (imported by the test modules)."""

from __future__ import annotations

import json
import random


def reviews_jsonl() -> bytes:
    """A small text dataset for the embeddings transform."""
    texts = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
        "A man is playing a guitar.",
    ]
    return "\n".join(json.dumps({"id": f"r{i}", "text": t}) for i, t in enumerate(texts)).encode()


def people_jsonl(entities: int = 40, seed: int = 7, prefix: str = "p") -> bytes:
    """Person records with noisy duplicates: ``entity`` is the ground truth."""
    rng = random.Random(seed)
    first = ["Anna", "Bruno", "Clara", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas"]
    last = ["Meyer", "Schmidt", "Rossi", "Dubois", "Novak", "Silva", "Kowalski", "Berg", "Ito"]
    cities = ["Berlin", "Lyon", "Porto", "Turin", "Graz", "Oslo"]
    records = []
    for e in range(entities):
        name = f"{rng.choice(first)} {rng.choice(last)}"
        email = f"{name.lower().replace(' ', '.')}{e}@example.org"
        phone = f"+49 30 {rng.randint(1000000, 9999999)}"
        city, year = rng.choice(cities), rng.randint(1950, 2000)
        for copy in range(rng.randint(1, 3)):
            noisy = name
            if copy and rng.random() < 0.5:
                i = rng.randrange(len(noisy))
                noisy = noisy[:i] + noisy[i + 1 :]
            records.append(
                {
                    "id": f"{prefix}{e}-{copy}",
                    "entity": f"{prefix}e{e}",
                    "name": noisy.upper() if copy == 2 else noisy,
                    "email": email if rng.random() < 0.8 else "",
                    "phone": phone if rng.random() < 0.8 else "",
                    "city": city,
                    "birth_year": year + (1 if copy and rng.random() < 0.2 else 0),
                }
            )
    rng.shuffle(records)
    return "\n".join(json.dumps(r) for r in records).encode()
