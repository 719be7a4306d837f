/*
 * Each connection's exchange id range (schema version 6): the columns
 * connections.first_exchange_id and last_exchange_id bound the ids of its
 * exchanges, and take the place of the index on exchanges(connection_id,
 * seq) that every stored exchange paid for.
 *
 * Why: that index cost the live agent about 0.8 us of its 3.9 us per
 * exchange (a second B-tree insert at one of as many places as there are
 * open connections, plus a statement journal because the INSERT then
 * writes two B-trees), measured with bench/live_bench.sh. The range is
 * kept in memory instead, per open connection, and written once per
 * transaction: in the UPDATE that closes the connection, or by one UPDATE
 * per connection that got exchanges in the batch just before COMMIT. Readers
 * see a range and the exchanges it covers in the same commit.
 *
 * Only widening is ever written (min of the firsts, max of the lasts), so
 * another process storing exchanges for the same connection row, or an
 * exchange stored after its connection closed, still leaves a true bound.
 * A rollback puts every range back to what the database holds.
 *
 * The table: open addressing on the connection id over an array of
 * entries; closed entries leave at the next commit, when the table is
 * rebuilt. Its size follows the open connections the capture holds (at
 * most its connection cap).
 */
#include "store_int.h"

#include <string.h>

struct conn_range {
    int64_t id;
    int64_t first, last;         /* in this transaction; 0: none */
    int64_t db_first, db_last;   /* what the database holds (committed) */
    unsigned char closed;        /* written by its closing UPDATE */
};

struct conn_ranges {
    struct conn_range *e; /* entries, n used of cap */
    size_t n, cap;
    uint32_t *slot;       /* index + 1 into e, 0: empty; nslots a power of two */
    size_t nslots;
};

static size_t slot_of(const struct conn_ranges *t, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15u;
    return (size_t)(h >> 32) & (t->nslots - 1);
}

static struct conn_range *find(const struct conn_ranges *t, int64_t id)
{
    if (t == NULL || t->nslots == 0)
        return NULL;
    for (size_t i = slot_of(t, id);; i = (i + 1) & (t->nslots - 1)) {
        uint32_t k = t->slot[i];
        if (k == 0)
            return NULL;
        if (t->e[k - 1].id == id)
            return &t->e[k - 1];
    }
}

/* Puts the first n entries into the (cleared) slots. */
static void reindex(struct conn_ranges *t)
{
    memset(t->slot, 0, t->nslots * sizeof *t->slot);
    for (size_t k = 0; k < t->n; k++) {
        size_t i = slot_of(t, t->e[k].id);
        while (t->slot[i])
            i = (i + 1) & (t->nslots - 1);
        t->slot[i] = (uint32_t)(k + 1);
    }
}

static int grow_slots(struct conn_ranges *t, size_t nslots)
{
    uint32_t *slot = repro_calloc(nslots, sizeof *slot);

    if (slot == NULL)
        return -1;
    repro_free(t->slot);
    t->slot = slot;
    t->nslots = nslots;
    reindex(t);
    return 0;
}

static struct conn_range *add(struct conn_ranges *t, int64_t id)
{
    size_t i;

    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        struct conn_range *e = cap < UINT32_MAX ? repro_realloc(t->e, cap * sizeof *e) : NULL;
        if (e == NULL)
            return NULL;
        t->e = e;
        t->cap = cap;
    }
    if (2 * (t->n + 1) > t->nslots) { /* load at most one half */
        size_t want = t->nslots ? 2 * t->nslots : 128;
        while (2 * (t->n + 1) > want)
            want *= 2;
        if (grow_slots(t, want) != 0)
            return NULL;
    }
    memset(&t->e[t->n], 0, sizeof t->e[t->n]);
    t->e[t->n].id = id;
    for (i = slot_of(t, id); t->slot[i]; i = (i + 1) & (t->nslots - 1))
        ;
    t->slot[i] = (uint32_t)(++t->n);
    return &t->e[t->n - 1];
}

/* Widens connection conn's range in the database to [first, last] now. */
static int write_range(struct sqlite_store *s, int64_t conn, int64_t first, int64_t last,
                       struct repro_error *err)
{
    sqlite3_stmt *st = s->st[ST_CONN_RANGE];

    sqlite3_bind_int64(st, 1, first);
    sqlite3_bind_int64(st, 2, last);
    sqlite3_bind_int64(st, 3, conn);
    return repro__store_step(s, st, err, "cannot record a connection's exchanges");
}

int repro__ranges_note(struct sqlite_store *s, int64_t conn, int64_t xid, struct repro_error *err)
{
    struct conn_range *r;

    if (s->ranges == NULL && (s->ranges = repro_calloc(1, sizeof *s->ranges)) == NULL)
        return write_range(s, conn, xid, xid, err);
    r = find(s->ranges, conn);
    if (r == NULL && (r = add(s->ranges, conn)) == NULL)
        return write_range(s, conn, xid, xid, err); /* no memory: at once */
    if (r->first == 0 || xid < r->first)
        r->first = xid;
    if (xid > r->last)
        r->last = xid;
    r->closed = 0;
    return REPRO_OK;
}

void repro__ranges_closing(const struct sqlite_store *s, int64_t conn, int64_t *first,
                           int64_t *last)
{
    const struct conn_range *r = find(s->ranges, conn);

    *first = *last = 0;
    if (r == NULL)
        return;
    *first = r->first; /* 0 (none since the last commit or rollback): NULL */
    *last = r->last;
}

/* Only once the UPDATE is done: a batch may still be committed after it
 * failed, and then the range must be written before COMMIT as usual. */
void repro__ranges_closed(struct sqlite_store *s, int64_t conn)
{
    struct conn_range *r = find(s->ranges, conn);

    if (r != NULL)
        r->closed = 1;
}

/* To write before COMMIT: open, and wider than what the database holds. */
static int grew(const struct conn_range *r)
{
    return !r->closed && (r->first != r->db_first || r->last != r->db_last);
}

int repro__ranges_flush(struct sqlite_store *s, struct repro_error *err)
{
    struct conn_ranges *t = s->ranges;
    int rc = REPRO_OK;

    for (size_t k = 0; t && rc == REPRO_OK && k < t->n; k++)
        if (grew(&t->e[k]))
            rc = write_range(s, t->e[k].id, t->e[k].first, t->e[k].last, err);
    return rc;
}

void repro__ranges_committed(struct sqlite_store *s)
{
    struct conn_ranges *t = s->ranges;
    size_t kept = 0;

    if (t == NULL)
        return;
    for (size_t k = 0; k < t->n; k++) {
        struct conn_range r = t->e[k];
        if (r.closed)
            continue;
        r.db_first = r.first;
        r.db_last = r.last;
        t->e[kept++] = r;
    }
    if (kept != t->n) {
        t->n = kept;
        reindex(t);
    }
}

void repro__ranges_rolled_back(struct sqlite_store *s)
{
    struct conn_ranges *t = s->ranges;

    for (size_t k = 0; t && k < t->n; k++) {
        t->e[k].first = t->e[k].db_first;
        t->e[k].last = t->e[k].db_last;
        t->e[k].closed = 0;
    }
}

void repro__ranges_free(struct sqlite_store *s)
{
    if (s->ranges) {
        repro_free(s->ranges->e);
        repro_free(s->ranges->slot);
        repro_free(s->ranges);
        s->ranges = NULL;
    }
}
