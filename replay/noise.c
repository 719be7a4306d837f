/*
 * Noise from a baseline: which compared fields differ between two
 * known-good answers, so that a target's difference on them is not a
 * regression (Diffy's primary/secondary/candidate rule, over a run and per
 * request). Counting is by repro_diff.key (array indexes as [*], header
 * names lower case), in a small open-addressing table; suggestions turn a
 * noisy key into the --ignore-* rule a user can pass next time, refusing
 * rules that would hide everything (the status, a whole body, a whole
 * array's elements).
 */
#include "repro/replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct repro_noise {
    struct repro_noise_field *v; /* dense, in order of first sight */
    size_t n, vcap;
    size_t *idx; /* open addressing into v; SIZE_MAX: empty */
    size_t cap;
    uint64_t requests, with_baseline;
};

/* The index slot for key: holding it, or the empty one where it goes. */
static size_t *slot(const struct repro_noise *n, const char *key)
{
    size_t i = (size_t)repro_hash_bytes(key, strlen(key)) & (n->cap - 1);
    while (n->idx[i] != SIZE_MAX && strcmp(n->v[n->idx[i]].key, key) != 0)
        i = (i + 1) & (n->cap - 1);
    return &n->idx[i];
}

static const struct repro_noise_field *find(const struct repro_noise *n, const char *key)
{
    size_t i = *slot(n, key);
    return i == SIZE_MAX ? NULL : &n->v[i];
}

static int rehash(struct repro_noise *n, size_t cap)
{
    size_t *idx = repro_malloc(cap * sizeof *idx);
    if (!idx)
        return REPRO_E_NOMEM;
    for (size_t i = 0; i < cap; i++)
        idx[i] = SIZE_MAX;
    repro_free(n->idx);
    n->idx = idx;
    n->cap = cap;
    for (size_t k = 0; k < n->n; k++)
        *slot(n, n->v[k].key) = k;
    return REPRO_OK;
}

int repro_noise_new(struct repro_noise **out)
{
    struct repro_noise *n = repro_calloc(1, sizeof *n);
    *out = NULL;
    if (!n || rehash(n, 64) != REPRO_OK) {
        repro_free(n);
        return REPRO_E_NOMEM;
    }
    *out = n;
    return REPRO_OK;
}

void repro_noise_free(struct repro_noise *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        repro_free((char *)n->v[i].key);
    repro_free(n->v);
    repro_free(n->idx);
    repro_free(n);
}

static struct repro_noise_field *get(struct repro_noise *n, const char *key)
{
    size_t *s = slot(n, key);
    if (*s != SIZE_MAX)
        return &n->v[*s];
    if (n->n == n->vcap) {
        size_t vcap = n->vcap ? 2 * n->vcap : 16;
        struct repro_noise_field *v = repro_realloc(n->v, vcap * sizeof *v);
        if (!v)
            return NULL;
        n->v = v;
        n->vcap = vcap;
    }
    char *k = repro_strdup(key);
    if (!k)
        return NULL;
    n->v[n->n] = (struct repro_noise_field){.key = k};
    *s = n->n++;
    if (2 * n->n > n->cap && rehash(n, 2 * n->cap) != REPRO_OK)
        return NULL;
    return &n->v[n->n - 1];
}

/* 1 when d's key occurs earlier in ds (a request counts once per key). */
static int repeated(const struct repro_diffs *ds, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (strcmp(ds->v[k].key, ds->v[i].key) == 0)
            return 1;
    return 0;
}

int repro_noise_add(struct repro_noise *n, const struct repro_diffs *target,
                    const struct repro_diffs *baseline)
{
    n->requests++;
    n->with_baseline += baseline != NULL;
    for (size_t i = 0; target && i < target->n; i++) {
        if (repeated(target, i))
            continue;
        struct repro_noise_field *f = get(n, target->v[i].key);
        if (!f)
            return REPRO_E_NOMEM;
        f->n_target++;
    }
    for (size_t i = 0; baseline && i < baseline->n; i++) {
        if (repeated(baseline, i))
            continue;
        struct repro_noise_field *f = get(n, baseline->v[i].key);
        if (!f)
            return REPRO_E_NOMEM;
        f->n_baseline++;
    }
    return REPRO_OK;
}

void repro_noise_classify(struct repro_noise *n, double abs_thr, double rel_thr)
{
    double total = n->with_baseline ? (double)n->with_baseline : 1.0;
    if (abs_thr <= 0)
        abs_thr = 0.03;
    if (rel_thr <= 0)
        rel_thr = 0.2;
    for (size_t i = 0; i < n->n; i++) {
        struct repro_noise_field *f = &n->v[i];
        double rt = (double)f->n_target / total, rb = (double)f->n_baseline / total;
        int regression = rt > rb + abs_thr && rt > rb * (1.0 + rel_thr);
        f->noisy = f->n_baseline > 0 && !regression;
    }
}

int repro_noise_is_noise(const struct repro_noise *n, const struct repro_diff *d,
                         const struct repro_diffs *baseline)
{
    for (size_t i = 0; baseline && i < baseline->n; i++)
        if (strcmp(baseline->v[i].key, d->key) == 0)
            return 1;
    const struct repro_noise_field *f = find(n, d->key);
    return f && f->noisy;
}

size_t repro_noise_fields(const struct repro_noise *n, const struct repro_noise_field **out)
{
    *out = n->v;
    return n->n;
}

const char *repro_noise_suggest(const struct repro_noise_field *f, char *buf, size_t len,
                                const char **why)
{
    const char *k = f->key;
    size_t kl = strlen(k);
    *why = NULL;
    if (strncmp(k, "header ", 7) == 0) {
        snprintf(buf, len, "--ignore-header '%s'", k + 7);
        return buf;
    }
    if (strcmp(k, "status") == 0)
        *why = "the status is never noise";
    else if (k[0] != '$' || strcmp(k, "$") == 0)
        *why = "it would ignore the whole body";
    else if (kl >= 3 && strcmp(k + kl - 3, "[*]") == 0)
        *why = "it would ignore a whole array";
    if (*why)
        return NULL;
    snprintf(buf, len, "--ignore-json-path '%s'", k);
    return buf;
}
