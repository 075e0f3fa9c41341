"""Writes the PopQA-style religion set: invented long-tail people, bios naming their faith in everyday word
forms ("a devout Catholic", "a Buddhist monk"), PopQA-like alias lists, and the skew of PopQA's religion
relation (40% "Catholic Church"), so a method that only learned the prior scores about 40%.

Run: .venv/bin/python bench/popqa_religion/make_corpus.py  (deterministic; rewrites docs/ and questions.jsonl)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
ALIASES = {
    "catholic": ["Catholic Church", "Roman Catholic Church", "Church", "Roman Catholicism", "Catholicism"],
    "anglican": ["Anglicanism", "Anglican Church", "Anglican Communion"],
    "lutheran": ["Lutheranism", "Lutheran Church"],
    "islam": ["Islam", "Mohammedanism", "Islamic religion"],
    "buddhism": ["Buddhism", "Buddha Dharma", "Buddhadharma"],
    "judaism": ["Judaism", "Jewish religion"],
    "hinduism": ["Hinduism", "Hindu dharma", "Sanatana Dharma"],
    "orthodox": ["Eastern Orthodox Church", "Orthodox Church", "Eastern Orthodoxy"],
    "methodism": ["Methodism", "Methodist Church", "Methodist movement"],
}
# How a biography says it (adjective forms, as real bios do).
PHRASES = {
    "catholic": ["was a devout Catholic", "remained a practising Roman Catholic throughout life", "was received into the Catholic faith"],
    "anglican": ["was raised in the Anglican tradition", "served as an Anglican lay reader"],
    "lutheran": ["was a lifelong Lutheran", "belonged to the Lutheran congregation of the town"],
    "islam": ["was a devout Muslim", "practised Islam and made the pilgrimage to Mecca"],
    "buddhism": ["was ordained as a Buddhist monk", "practised Zen Buddhism"],
    "judaism": ["was an observant Jew", "grew up in a Jewish family and kept the faith"],
    "hinduism": ["was a practising Hindu", "followed the Hindu tradition of the family"],
    "orthodox": ["was a member of the Eastern Orthodox Church", "was baptised Orthodox"],
    "methodism": ["was a Methodist", "preached in Methodist chapels"],
}
COUNTS = {"catholic": 24, "anglican": 5, "lutheran": 5, "islam": 5, "buddhism": 5, "judaism": 4, "hinduism": 4, "orthodox": 4, "methodism": 4}
FIRST = "Aurel Benedikt Casimir Dorota Elvira Florin Gustav Hedda Ilario Jolanta Kasimir Ludmila Matthias Nerina Oskar Petra Quentin Rosalind Sebastian Tereza Ulrich Valeska Wendelin Xenia Yorick Zofia Amadeo Brigida Cyprian Delphine".split()
LAST = "Grégoire Marchetti Voskuijlen Ostrander Halvorsen Brankovic Tremblay Ferreira Lindqvist Okonkwo Nakashima Dervishi Castellanos Pellegrini Rautio Szabó Whitcombe Kovalenko Abernathy Montclair".split()
JOBS = ["composer", "bishop", "botanist", "architect", "poet", "cartographer", "physician", "painter", "missionary", "engineer", "historian", "sculptor"]
PLACES = ["Lyon", "Kraków", "Porto", "Uppsala", "Ghent", "Trieste", "Kyoto", "Cairo", "Pune", "Vilnius", "Leeds", "Quebec"]


def main() -> None:
    rng = random.Random(22)
    religions = [r for r, n in COUNTS.items() for _ in range(n)]
    rng.shuffle(religions)
    names = set()
    while len(names) < len(religions):
        names.add(f"{rng.choice(FIRST)} {rng.choice(LAST)}")
    people = list(zip(sorted(names), religions, strict=True))
    rng.shuffle(people)
    docs = HERE / "docs"
    docs.mkdir(exist_ok=True)
    for old in docs.glob("*.txt"):
        old.unlink()
    questions = []
    for d in range(10):
        group = people[d * 6 : (d + 1) * 6]
        lines = [f"Biographical notes, volume {d + 1}", ""]
        for name, rel in group:
            born = rng.randint(1780, 1960)
            lines.append(
                f"{name} ({born}-{born + rng.randint(45, 90)}) was a {rng.choice(JOBS)} born in {rng.choice(PLACES)}. "
                f"{name.split()[0]} {rng.choice(PHRASES[rel])}, and is remembered for work published in {born + rng.randint(25, 40)}."
            )
            lines.append("")
            questions.append({"question": f"What is the religion of {name}?", "answers": ALIASES[rel], "sources": [f"notes_{d + 1:02d}.txt"]})
        (docs / f"notes_{d + 1:02d}.txt").write_text("\n".join(lines), encoding="utf-8")
    # Half train, half test, the same skew in both (12 of 30 "Catholic Church").
    by_rel: dict[str, list[dict]] = {}
    for q in questions:
        by_rel.setdefault(q["answers"][0], []).append(q)
    rows = []
    for group in by_rel.values():
        for i, q in enumerate(group):
            rows.append({**q, "split": "train" if i % 2 == 0 else "test"})
    rows.sort(key=lambda q: q["question"])
    with (HERE / "questions.jsonl").open("w", encoding="utf-8") as f:
        for i, q in enumerate(rows, 1):
            f.write(json.dumps({"id": f"pq-{i:03d}", "question": q["question"], "answers": q["answers"], "answerable": True,
                                "split": q["split"], "type": "religion", "sources": q["sources"]}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
