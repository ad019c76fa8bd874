"""What the shopper would add to recommendations on the UCI history: a prototype.

Not part of the engine: plain Python used to decide what to build next (issue 22). For
each test month, every later basket of two or more products gives one case (a random
query product and a random other product of the basket, seeded). Compared:

- plain co-occurrence counts, best sellers filling free slots (the issue's baseline);
- the same customer's own earlier products, ranked by how often each was bought with
  the query times how often the customer bought it (plain co-occurrence for a basket
  without a returning customer).

Same cleaning as the engine's importer (cancellations and adjustments dropped, only
positive quantities); the UCI `CustomerID` names the customer.

    python3 scripts/reco_personal.py
"""
import csv
import random
from collections import defaultdict

FILE = "../shared/data/uci-online-retail/online_retail_until_2011-09.csv"
MONTHS = ["2011-05", "2011-07", "2011-09"]


def read():
    items, customer, day = defaultdict(list), {}, {}
    with open(FILE, newline="") as f:
        for r in csv.DictReader(f):
            invoice = r["InvoiceNo"]
            if invoice.startswith(("C", "A")) or int(r["Quantity"]) <= 0:
                continue
            items[invoice].append(r["StockCode"])
            customer[invoice] = r["CustomerID"]
            day[invoice] = r["InvoiceDate"][:10]
    return items, customer, day


def main():
    items, customer, day = read()
    rng = random.Random(7)
    for month in MONTHS:
        start = month + "-01"
        bought_by = defaultdict(lambda: defaultdict(int))
        pairs = defaultdict(lambda: defaultdict(int))
        orders = defaultdict(int)
        test = []
        for invoice, basket in items.items():
            distinct = set(basket)
            if day[invoice] < start:
                for x in distinct:
                    orders[x] += 1
                    if customer[invoice]:
                        bought_by[customer[invoice]][x] += 1
                    for y in distinct:
                        if x != y:
                            pairs[x][y] += 1
            elif day[invoice][:7] == month and len(distinct) >= 2:
                test.append(invoice)
        best = [x for x, _ in sorted(orders.items(), key=lambda z: (-z[1], z[0]))[:30]]

        def filled(v, q):
            for b in best:
                if len(v) >= 10:
                    break
                if b != q and b not in v:
                    v.append(b)
            return v

        def plain(q):
            c = pairs.get(q, {})
            return filled(sorted(c, key=lambda x: (-c[x], x))[:10], q)

        def personal(q, own):
            c = pairs.get(q, {})
            return sorted((x for x in own if x != q), key=lambda x: (-c.get(x, 0) * own[x], x))[:10]

        hits_plain = hits_personal = returning = own_share = 0
        for invoice in test:
            distinct = sorted(set(items[invoice]))
            q, h = rng.sample(distinct, 2)
            hits_plain += h in plain(q)
            own = bought_by.get(customer[invoice]) if customer[invoice] else None
            if own:
                returning += 1
                own_share += sum(x in own for x in distinct) / len(distinct)
                hits_personal += h in personal(q, own)
            else:
                hits_personal += h in plain(q)
        n = len(test)
        print(
            f"{month}: {n} cases, {returning} from returning customers "
            f"(of their products, {own_share / max(returning, 1):.3f} bought by them before); "
            f"hit-rate@10 plain co-occurrence {hits_plain / n:.4f}, "
            f"the customer's own products {hits_personal / n:.4f} "
            f"({(hits_personal / hits_plain - 1) * 100:+.0f} %)"
        )


if __name__ == "__main__":
    main()
