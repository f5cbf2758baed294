"""Build the shipped SQLite databases of the ``sql`` domain, deterministically.

    python smc/domains/data/sql/build.py          # rewrites shop, school, library .sqlite
    python smc/domains/data/sql/build.py --check  # and runs every gold query of <db>.jsonl

The rows come from a seeded ``random.Random``, so the files are reproducible; they are
committed so that nothing is generated at run time.  ``--check`` verifies that every gold
query of ``<db>.jsonl`` runs and returns a non-empty result.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent

FIRST = ["Alice", "Bruno", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
         "Kara", "Liam", "Maya", "Nikolai", "Olga", "Pedro", "Quinn", "Rosa", "Samir", "Tara",
         "Umar", "Vera", "Wen", "Ximena", "Yusuf", "Zoe"]
LAST = ["Smith", "Garcia", "Muller", "Rossi", "Tanaka", "Silva", "Novak", "Dubois", "Khan",
        "Larsen", "Moreau", "Costa", "Weber", "Kowalski", "Haddad", "Okafor"]
CITIES = [("Paris", "France"), ("Lyon", "France"), ("Berlin", "Germany"), ("Munich", "Germany"),
          ("Madrid", "Spain"), ("Rome", "Italy"), ("Milan", "Italy"), ("London", "UK"),
          ("Leeds", "UK"), ("Lisbon", "Portugal")]


def _people(rng: random.Random, n: int) -> list[str]:
    """``n`` distinct "First Last" names."""
    names: list[str] = []
    while len(names) < n:
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        if name not in names:
            names.append(name)
    return names


def _day(rng: random.Random, start: date, span_days: int) -> date:
    return start + timedelta(days=rng.randrange(span_days))


def build_shop(con: sqlite3.Connection, rng: random.Random) -> None:
    con.executescript("""
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT,
                                city TEXT, country TEXT, signup_date TEXT);
        CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT,
                               price REAL, stock INTEGER);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id),
                             order_date TEXT, status TEXT, total REAL);
        CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id INTEGER REFERENCES orders(id),
                                  product_id INTEGER REFERENCES products(id), quantity INTEGER,
                                  unit_price REAL);
    """)
    for i, name in enumerate(_people(rng, 40), 1):
        city, country = rng.choice(CITIES)
        email = name.lower().replace(" ", ".") + "@example.com"
        con.execute("INSERT INTO customers VALUES (?,?,?,?,?,?)",
                    (i, name, email, city, country,
                     _day(rng, date(2021, 1, 1), 900).isoformat()))
    catalogue = {
        "Electronics": ["USB Cable", "Headphones", "Keyboard", "Mouse", "Monitor", "Webcam"],
        "Books": ["SQL Primer", "Python Basics", "Cooking at Home", "World Atlas",
                  "Poetry Anthology"],
        "Kitchen": ["Coffee Mug", "Teapot", "Chef Knife", "Cutting Board", "Frying Pan"],
        "Garden": ["Watering Can", "Seed Pack", "Garden Gloves", "Flower Pot"],
        "Toys": ["Puzzle", "Board Game", "Kite", "Yo-yo"],
    }
    pid = 0
    prices = {}
    for category, items in catalogue.items():
        for item in items:
            pid += 1
            price = round(rng.uniform(3, 250 if category == "Electronics" else 60), 2)
            prices[pid] = price
            con.execute("INSERT INTO products VALUES (?,?,?,?,?)",
                        (pid, item, category, price, rng.choice([0, 5, 12, 20, 35, 50, 80])))
    statuses = ["delivered"] * 6 + ["shipped"] * 2 + ["pending", "cancelled"]
    item_id = 0
    for oid in range(1, 121):
        cust = rng.randint(1, 34)          # customers 35..40 never ordered
        lines = []
        for product in rng.sample(range(1, pid - 1), rng.randint(1, 4)):  # the last 2: never sold
            item_id += 1
            qty = rng.randint(1, 5)
            lines.append((item_id, oid, product, qty, prices[product]))
        total = round(sum(q * p for _, _, _, q, p in lines), 2)
        con.execute("INSERT INTO orders VALUES (?,?,?,?,?)",
                    (oid, cust, _day(rng, date(2023, 1, 1), 700).isoformat(),
                     rng.choice(statuses), total))
        con.executemany("INSERT INTO order_items VALUES (?,?,?,?,?)", lines)


def build_school(con: sqlite3.Connection, rng: random.Random) -> None:
    con.executescript("""
        CREATE TABLE teachers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, department TEXT,
                               hire_year INTEGER, salary INTEGER);
        CREATE TABLE students (id INTEGER PRIMARY KEY, name TEXT NOT NULL, major TEXT,
                               enrollment_year INTEGER, gpa REAL, city TEXT);
        CREATE TABLE courses (id INTEGER PRIMARY KEY, title TEXT NOT NULL, department TEXT,
                              credits INTEGER, teacher_id INTEGER REFERENCES teachers(id));
        CREATE TABLE enrollments (student_id INTEGER REFERENCES students(id),
                                  course_id INTEGER REFERENCES courses(id), semester TEXT,
                                  grade INTEGER, PRIMARY KEY (student_id, course_id));
    """)
    departments = ["Mathematics", "Physics", "History", "Biology", "Computer Science"]
    names = _people(rng, 70)
    for i, name in enumerate(names[:12], 1):
        con.execute("INSERT INTO teachers VALUES (?,?,?,?,?)",
                    (i, name, departments[(i - 1) % 5], rng.randint(1998, 2022),
                     rng.randrange(42000, 98000, 500)))
    for i, name in enumerate(names[12:], 1):
        con.execute("INSERT INTO students VALUES (?,?,?,?,?,?)",
                    (i, name, rng.choice(departments), rng.randint(2019, 2024),
                     round(rng.uniform(2.0, 4.0), 2), rng.choice(CITIES)[0]))
    titles = {
        "Mathematics": ["Calculus I", "Linear Algebra", "Statistics"],
        "Physics": ["Mechanics", "Electromagnetism", "Quantum Physics"],
        "History": ["Ancient History", "Modern Europe"],
        "Biology": ["Genetics", "Ecology", "Cell Biology"],
        "Computer Science": ["Databases", "Algorithms", "Operating Systems", "Machine Learning"],
    }
    cid = 0
    for dept, ts in titles.items():
        teachers = [i for i in range(1, 13) if departments[(i - 1) % 5] == dept]
        for title in ts:
            cid += 1
            con.execute("INSERT INTO courses VALUES (?,?,?,?,?)",
                        (cid, title, dept, rng.choice([3, 4, 5, 6]), rng.choice(teachers)))
    n_students = len(names) - 12
    for sid in range(1, n_students + 1 - 3):      # the last 3 students take no course
        for course in rng.sample(range(1, cid + 1), rng.randint(1, 5)):
            con.execute("INSERT INTO enrollments VALUES (?,?,?,?)",
                        (sid, course, rng.choice(["2023-fall", "2024-spring", "2024-fall"]),
                         rng.randint(45, 100)))


def build_library(con: sqlite3.Connection, rng: random.Random) -> None:
    con.executescript("""
        CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT,
                              birth_year INTEGER);
        CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL,
                            author_id INTEGER REFERENCES authors(id), genre TEXT,
                            published_year INTEGER, pages INTEGER);
        CREATE TABLE members (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT,
                              joined_year INTEGER);
        CREATE TABLE loans (id INTEGER PRIMARY KEY, book_id INTEGER REFERENCES books(id),
                            member_id INTEGER REFERENCES members(id), loan_date TEXT,
                            return_date TEXT);
    """)
    authors = [("Mary Shelley", "UK", 1797), ("Jules Verne", "France", 1828),
               ("Leo Tolstoy", "Russia", 1828), ("Jane Austen", "UK", 1775),
               ("Gabriel Garcia Marquez", "Colombia", 1927), ("Haruki Murakami", "Japan", 1949),
               ("Toni Morrison", "USA", 1931), ("Italo Calvino", "Italy", 1923),
               ("Chinua Achebe", "Nigeria", 1930), ("Agatha Christie", "UK", 1890),
               ("Isaac Asimov", "USA", 1920), ("Ursula Le Guin", "USA", 1929)]
    con.executemany("INSERT INTO authors VALUES (?,?,?,?)",
                    [(i, *a) for i, a in enumerate(authors, 1)])
    books = [("Frankenstein", 1, "Horror", 1818), ("The Last Man", 1, "Science Fiction", 1826),
             ("Twenty Thousand Leagues", 2, "Adventure", 1870),
             ("Around the World in Eighty Days", 2, "Adventure", 1872),
             ("War and Peace", 3, "Historical", 1869), ("Anna Karenina", 3, "Romance", 1878),
             ("Pride and Prejudice", 4, "Romance", 1813), ("Emma", 4, "Romance", 1815),
             ("One Hundred Years of Solitude", 5, "Magical Realism", 1967),
             ("Love in the Time of Cholera", 5, "Romance", 1985),
             ("Kafka on the Shore", 6, "Magical Realism", 2002),
             ("Norwegian Wood", 6, "Romance", 1987),
             ("Beloved", 7, "Historical", 1987), ("Song of Solomon", 7, "Historical", 1977),
             ("Invisible Cities", 8, "Fantasy", 1972),
             ("The Baron in the Trees", 8, "Fantasy", 1957),
             ("Things Fall Apart", 9, "Historical", 1958),
             ("Murder on the Orient Express", 10, "Mystery", 1934),
             ("And Then There Were None", 10, "Mystery", 1939),
             ("Foundation", 11, "Science Fiction", 1951), ("I, Robot", 11, "Science Fiction", 1950),
             ("The Dispossessed", 12, "Science Fiction", 1974),
             ("A Wizard of Earthsea", 12, "Fantasy", 1968)]
    con.executemany("INSERT INTO books VALUES (?,?,?,?,?,?)",
                    [(i, t, a, g, y, rng.randrange(150, 1200, 10))
                     for i, (t, a, g, y) in enumerate(books, 1)])
    for i, name in enumerate(_people(rng, 30), 1):
        con.execute("INSERT INTO members VALUES (?,?,?,?)",
                    (i, name, rng.choice(CITIES)[0], rng.randint(2015, 2024)))
    for lid in range(1, 151):
        start = _day(rng, date(2023, 1, 1), 640)
        returned = None if rng.random() < 0.15 else (start + timedelta(days=rng.randint(3, 40)))
        con.execute("INSERT INTO loans VALUES (?,?,?,?,?)",
                    (lid, rng.randint(1, len(books) - 2),   # the last two books were never lent
                     rng.randint(1, 27), start.isoformat(),  # members 28..30 never borrowed
                     returned.isoformat() if returned else None))


BUILDERS = {"shop": (build_shop, 11), "school": (build_school, 12), "library": (build_library, 13)}


def build(name: str, directory: Path = HERE) -> Path:
    """Write ``<directory>/<name>.sqlite`` from scratch; returns its path."""
    builder, seed = BUILDERS[name]
    path = directory / f"{name}.sqlite"
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        builder(con, random.Random(seed))
        con.commit()
        con.execute("VACUUM")
    finally:
        con.close()
    return path


def check(name: str, directory: Path = HERE) -> list[str]:
    """Problems with ``<name>.jsonl``: gold queries that fail or return no rows."""
    problems = []
    con = sqlite3.connect(f"file:{directory / (name + '.sqlite')}?mode=ro", uri=True)
    seen = set()
    with open(directory / f"{name}.jsonl", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            row = json.loads(line)
            if row["id"] in seen or row["db"] != name:
                problems.append(f"{name}.jsonl:{n}: duplicate id or wrong db")
            seen.add(row["id"])
            try:
                rows = con.execute(row["gold"]).fetchall()
            except sqlite3.Error as e:
                problems.append(f"{name}.jsonl:{n} ({row['id']}): {e}")
                continue
            if not rows or all(v is None for r in rows for v in r):
                problems.append(f"{name}.jsonl:{n} ({row['id']}): empty result")
    con.close()
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="also run every gold query")
    args = ap.parse_args()
    for name in BUILDERS:
        print("wrote", build(name))
    if args.check:
        problems = [p for name in BUILDERS for p in check(name)]
        print("\n".join(problems) or "every gold query runs and returns rows")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
