/* Inner loops of "BM25 index → ranked passages" (and of the reader's: the sentences' covers,
 * the candidate spans, their edges and feature table, the span trees), compiled at install
 * time (retrieval._kernels).
 *
 * What they compute and why is in retrieval/kernels.py, the module callers use. Scores must be
 * bit-identical to rank-bm25's formula with a passage's weights added in term order (as the
 * numba kernels these replaced added them), so every sum below keeps that order; the build
 * turns off floating-point contraction (-ffp-contract=off) so that no multiply-add is fused.
 *
 * Arrays arrive through the buffer protocol (no numpy headers needed to build): each is checked
 * for its item type, one dimension, C contiguity and its length against the others, and a
 * mismatch is a ValueError. Passage ids in the postings are trusted to be below the passage
 * count (the index is written by retrieval.fieldbuild and checked when opened), and passage
 * lengths to be below the ratio table's row length (retrieval.index.Field.scoring makes both
 * from the same lengths). The BM25 loops run
 * without the GIL: searches run in a pool of threads, each with its own scratch arrays; the
 * reader's loops over one sentence (`held_sums`, which reads Python strings, `span_runs`,
 * `edge_sides`) keep it: they take microseconds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_VIEWS 20
/* The reader's span table (reader.py): text columns a span, length bins, segment flags read
 * from a span's segments and neighbours, bracket pairs; and where its edges' text starts. */
#define SPAN_TEXT 13
#define SPAN_LEFT 8
#define SPAN_LENGTH_BINS 8
#define SPAN_FLAGS 9
#define SPAN_PAIRS 8
/* Postings (or candidates) ahead whose scratch entries a loop asks the CPU to fetch early: at
 * a million passages the scratch arrays outgrow the caches and each random access would wait
 * on memory in turn (RESULTS.md, "1M passages, the tail and the whole path"). */
#define AHEAD 16
/* From how many candidates (times k) `finish` first raises theta to the final scores of the k
 * best so far (`final_floor`): below that, cutting the candidates costs less than the floor. */
#define FLOOR_FROM 2
/* Entries of the table of final scores `final_floor` keeps (filled to half at most). */
#define FINALS 4096

/* The buffers one call holds, released together. */
typedef struct {
    Py_buffer views[MAX_VIEWS];
    int n;
} Views;

static void release(Views *views) {
    for (int i = 0; i < views->n; i++) PyBuffer_Release(&views->views[i]);
    views->n = 0;
}

/* Whether a struct-module format is one native item of the given codes ("@", "=" or, on a
 * little-endian machine, "<" may lead). */
static int format_is(const char *format, const char *codes) {
    const uint16_t probe = 1;
    int little = *(const uint8_t *)&probe == 1;
    if (format == NULL) return 0;
    if (*format == '@' || *format == '=' || (little && *format == '<')) format++;
    return format[0] != '\0' && format[1] == '\0' && strchr(codes, format[0]) != NULL;
}

/* The data of `obj` as a one-dimensional C-contiguous array of `itemsize`-byte items whose
 * format is one of `codes`; its length in *length. NULL with ValueError on a mismatch. */
static void *view(Views *views, PyObject *obj, const char *name, const char *codes,
                  Py_ssize_t itemsize, int writable, Py_ssize_t *length) {
    Py_buffer *buffer = &views->views[views->n];
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, buffer, flags) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s must be a %sC-contiguous array", name,
                     writable ? "writable " : "");
        return NULL;
    }
    views->n++;
    if (buffer->ndim != 1 || buffer->itemsize != itemsize || !format_is(buffer->format, codes)) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be one-dimensional with %zd-byte items of format '%s' "
                     "(got %d dimensions, format '%s')",
                     name, itemsize, codes, buffer->ndim, buffer->format ? buffer->format : "B");
        return NULL;
    }
    *length = buffer->shape[0];
    return buffer->buf;
}

#define U32 "IL"
#define U16 "H"
#define U8 "B"
#define I64 "lq"
#define F64 "d"
#define BOOL "?"
#define U64 "LQ"

static int length_error(const char *what) {
    PyErr_Format(PyExc_ValueError, "%s", what);
    return -1;
}

/* One term's postings and what scoring them needs, shared by every kernel. */
typedef struct {
    const uint32_t *docs;
    const uint8_t *tfs;
    /* Term t's postings are starts[t]..ends[t] - 1 of docs and tfs: the field's own arrays,
     * read in place, or a buffer the terms' postings were copied into. */
    const int64_t *starts, *ends;
    /* The postings of term t a top-k call scores: lo[t]..hi[t], its passages within the
     * passage range asked for (`passages_within`); all of starts[t]..ends[t] by default. */
    const int64_t *lo, *hi;
    const double *idfs;
    const double *upper;
    /* Each passage's length in tokens: 2-byte (lengths16, when every length is below 65,536:
     * the usual case, half the memory a posting's random read of it touches) or 4-byte
     * (lengths32); the other is NULL. */
    const uint16_t *lengths16;
    const uint32_t *lengths32;
    /* A weight before its idf, tf (k1 + 1) / (tf + norm), by frequency and passage length:
     * ratios[tf * n_lengths + length]. Looked up instead of worked out per posting: no
     * division, and a passage's length is read instead of its 8-byte norm (the table holds
     * the same bits, RESULTS.md "Issue 15, fifth pass"). */
    const double *ratios;
    int64_t n_lengths;
    double k1; /* for the block bounds */
    int64_t n_terms;
    int64_t size; /* passage count: length of lengths and of the scratch arrays */
} Query;

#define FREQUENCIES 256 /* rows of the ratio table: every uint8 frequency */

/* Views the passage lengths, uint16 or uint32 (by the array's item size) into q. */
static int view_lengths(Views *views, Query *q, PyObject *lengths, Py_ssize_t *n) {
    Py_buffer probe;
    int narrow = 0;
    if (PyObject_GetBuffer(lengths, &probe, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) == 0) {
        narrow = probe.itemsize == 2;
        PyBuffer_Release(&probe);
    } else {
        PyErr_Clear(); /* view() says what is wrong with it */
    }
    if (narrow) return (q->lengths16 = view(views, lengths, "lengths", U16, 2, 0, n)) ? 0 : -1;
    return (q->lengths32 = view(views, lengths, "lengths", U32, 4, 0, n)) ? 0 : -1;
}

/* Views the postings (docs, tfs, starts, ends, idfs), lengths and ratios, checking that they
 * fit together: each term's postings lie within docs, one idf per term, a row of ratios for
 * every frequency. 0, or -1 with ValueError. */
static int view_query(Views *views, Query *q, PyObject *docs, PyObject *tfs, PyObject *starts,
                      PyObject *ends, PyObject *idfs, PyObject *lengths, PyObject *ratios) {
    Py_ssize_t n_docs, n_tfs, n_starts, n_ends, n_idfs, n_lengths, n_ratios;
    if (!(q->docs = view(views, docs, "docs", U32, 4, 0, &n_docs))) return -1;
    if (!(q->tfs = view(views, tfs, "tfs", U8, 1, 0, &n_tfs))) return -1;
    if (!(q->starts = view(views, starts, "starts", I64, 8, 0, &n_starts))) return -1;
    if (!(q->ends = view(views, ends, "ends", I64, 8, 0, &n_ends))) return -1;
    if (!(q->idfs = view(views, idfs, "idfs", F64, 8, 0, &n_idfs))) return -1;
    if (view_lengths(views, q, lengths, &n_lengths) < 0) return -1;
    if (!(q->ratios = view(views, ratios, "ratios", F64, 8, 0, &n_ratios))) return -1;
    if (n_ratios < FREQUENCIES || n_ratios % FREQUENCIES)
        return length_error("ratios must hold a row of lengths for each of 256 frequencies");
    if (n_tfs != n_docs) return length_error("docs and tfs must have the same length");
    if (n_starts != n_idfs || n_ends != n_idfs)
        return length_error("starts, ends and idfs must hold one entry per term");
    for (Py_ssize_t t = 0; t < n_idfs; t++)
        if (q->starts[t] < 0 || q->ends[t] < q->starts[t] || q->ends[t] > n_docs)
            return length_error("each term's postings (starts to ends) must lie within docs");
    q->n_terms = n_idfs;
    q->lo = q->starts;
    q->hi = q->ends;
    q->size = n_lengths;
    q->n_lengths = n_ratios / FREQUENCIES;
    return 0;
}

/* Narrows each term's postings to the passages from..to - 1 (binary search: a term's passages
 * ascend), into `range` (2 n_terms entries, the caller's). */
static void passages_within(Query *q, int64_t from, int64_t to, int64_t *range) {
    int64_t n = q->n_terms;
    for (int64_t t = 0; t < n; t++) {
        int64_t edges[2] = {from, to};
        for (int e = 0; e < 2; e++) {
            int64_t low = q->starts[t], high = q->ends[t];
            while (low < high) {
                int64_t middle = low + (high - low) / 2;
                if ((int64_t)q->docs[middle] < edges[e]) low = middle + 1;
                else high = middle;
            }
            range[e * n + t] = low;
        }
    }
    q->lo = range;
    q->hi = range + n;
}

/* A passage's length from whichever of the two widths the lengths came in (`Query`). */
static inline uint32_t length_of(const uint16_t *narrow, const uint32_t *wide, uint32_t d) {
    return narrow ? narrow[d] : wide[d];
}

/* A posting's weight: idf times rank-bm25's tf (k1 + 1) / (tf + norm), from the table. */
static inline double weight(double idf, const double *ratios, int64_t n_lengths, uint8_t tf,
                            uint32_t length) {
    return idf * ratios[(int64_t)tf * n_lengths + length];
}


/* Scratch of one top-k call: passage-sized arrays from the caller, small ones of its own. */
typedef struct {
    /* The candidates, in the order they were seen but for the cuts' moves: cand[i] is a
     * passage, scores[i] its score so far. Dense, so that the passes over all candidates
     * (the k-th best, the cut) read them in order instead of at random. */
    double *scores;
    uint32_t *cand; /* passage ids fit 32 bits, as in the postings: half the memory */
    /* By passage: its place in the candidates + 1, 0 if it is none (zero on entry and exit). */
    uint32_t *slot;
    int64_t k;
    double *left; /* left[t]: the most terms t.. can add (n_terms + 1) */
    double *best;       /* k entries, for kth_best */
    uint32_t *best_ids; /* their passages */
    int64_t *out_docs;
    double *out_scores;
    /* A board shared with the call ranking the other half of the passages, or NULL: per half,
     * a sequence number (odd while being written) and the k best partial scores (bits). */
    uint64_t *board;
    int64_t half; /* this call's slot on the board: 0 or 1 */
    int *found_k; /* whether kth_best has found k passages: best and best_ids hold its k */
    /* The final scores `final_floor` has worked out, by passage (open addressing, FINALS
     * entries, ids + 1; 0 is empty), so that each is looked up in the terms left only once:
     * a passage's final score does not change as its terms are added. */
    uint32_t *final_ids;
    double *finals;
    int64_t n_finals;
} Scratch;

/* Posts the k best partial scores (s->best, ascending, as kth_best left them) on the board:
 * a sequence lock, as the other half may read them meanwhile. */
static void post(const Scratch *s) {
    uint64_t *slot = s->board + s->half * (s->k + 1);
    uint64_t sequence = __atomic_load_n(slot, __ATOMIC_RELAXED);
    __atomic_store_n(slot, sequence + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    for (int64_t i = 0; i < s->k; i++) {
        uint64_t bits;
        memcpy(&bits, &s->best[i], sizeof bits);
        __atomic_store_n(&slot[1 + i], bits, __ATOMIC_RELAXED);
    }
    __atomic_store_n(slot, sequence + 2, __ATOMIC_RELEASE);
}

/* theta raised, if the board allows, to the k-th best of this half's last posted k best
 * partial scores (none before the first) and the other half's: partial scores only grow and
 * the halves hold different passages, so that is at most the k-th best final score of all the
 * passages. Passages below it can be in neither half's share of the top k of all, which is all
 * the caller's merge keeps. Skipped while the other half is posting. */
static double shared_theta(const Scratch *s, double theta) {
    if (s->board == NULL) return theta;
    const uint64_t *slot = s->board + (1 - s->half) * (s->k + 1);
    uint64_t before = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (before == 0 || before % 2) return theta;
    double *other = malloc((size_t)s->k * sizeof(double));
    if (other == NULL) return theta;
    for (int64_t i = 0; i < s->k; i++) {
        uint64_t bits = __atomic_load_n(&slot[1 + i], __ATOMIC_RELAXED);
        memcpy(&other[i], &bits, sizeof bits);
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    double kth = theta;
    if (__atomic_load_n(slot, __ATOMIC_RELAXED) == before) {
        /* Both ascending: take from the top of either until k are taken. */
        int64_t i = *s->found_k ? s->k - 1 : -1, j = s->k - 1;
        for (int64_t taken = 0; taken < s->k; taken++) {
            if (j < 0 || (i >= 0 && s->best[i] >= other[j])) kth = s->best[i--];
            else kth = other[j--];
        }
    }
    free(other);
    return kth > theta ? kth : theta;
}


/* Add the weights of postings start..end of one term; a passage seen for the first time joins
 * the candidates. Returns the new candidate count. The slots (and lengths) of the posting
 * AHEAD on are fetched early up to `limit`, the end of the postings the caller goes through
 * (past the block being scanned: else the first AHEAD postings of each block would wait on
 * memory; both fields' tops at 1M p50 0.95x, RESULTS.md "Issue 15, seventh pass"). A
 * candidate's score is read and written in the dense candidate arrays, which stay in cache.
 * (Pointers are copied into locals, so that no store through one forces a reload of another
 * per posting.) */
static int64_t scan(const Query *q, const Scratch *s, int64_t start, int64_t end, int64_t limit,
                    double idf, int64_t count) {
    const uint32_t *docs = q->docs, *wide = q->lengths32;
    const uint16_t *narrow = q->lengths16; /* one loop for each, the compiler's unswitching */
    const uint8_t *tfs = q->tfs;
    const double *ratios = q->ratios;
    const int64_t n_lengths = q->n_lengths, size = q->size;
    double *scores = s->scores;
    uint32_t *cand = s->cand, *slot = s->slot;
    for (int64_t j = start; j < end; j++) {
        uint32_t d = docs[j];
        uint32_t ahead = docs[j + AHEAD < limit ? j + AHEAD : j];
        __builtin_prefetch(&slot[ahead], 1);
        __builtin_prefetch(narrow ? (const void *)&narrow[ahead] : &wide[ahead], 0);
        /* Without a branch on whether the passage is new: in the long questions' later
         * strong terms, new passages and ones seen already come at random. A new one takes
         * the next place (its id is written there either way, counted only if new: once
         * every passage is a candidate, nothing is new and there is no room left). */
        uint32_t at = slot[d];
        int fresh = at == 0;
        int64_t place = fresh ? count : (int64_t)at - 1;
        double score = fresh ? 0.0 : scores[place];
        if (count < size) cand[count] = d;
        count += fresh;
        slot[d] = (uint32_t)(place + 1);
        scores[place] = score + weight(idf, ratios, n_lengths, tfs[j], length_of(narrow, wide, d));
    }
    return count;
}

/* Add the weights of postings start..end of one term to the passages already seen only
 * (looking ahead up to `limit`, as `scan`). */
static void add_to_seen(const Query *q, const Scratch *s, int64_t start, int64_t end,
                        int64_t limit, double idf) {
    const uint32_t *docs = q->docs, *wide = q->lengths32;
    const uint16_t *narrow = q->lengths16;
    const uint8_t *tfs = q->tfs;
    const double *ratios = q->ratios;
    const int64_t n_lengths = q->n_lengths;
    double *scores = s->scores;
    const uint32_t *slot = s->slot;
    for (int64_t j = start; j < end; j++) {
        uint32_t d = docs[j];
        __builtin_prefetch(&slot[docs[j + AHEAD < limit ? j + AHEAD : j]], 0);
        uint32_t at = slot[d];
        if (at)
            scores[at - 1] += weight(idf, ratios, n_lengths, tfs[j], length_of(narrow, wide, d));
    }
}

/* The k-th highest score among the candidates (-inf if fewer than k): one pass, keeping the
 * best k in an ascending array; most candidates cost one comparison. */
static double kth_best(const Scratch *s, int64_t count) {
    int64_t k = s->k;
    double *best = s->best;
    uint32_t *ids = s->best_ids;
    if (count < k) return -INFINITY;
    for (int64_t i = 0; i < k; i++) best[i] = -INFINITY;
    const double *scores = s->scores;
    for (int64_t i = 0; i < count; i++) {
        /* Most candidates are below the k-th best so far: 8 at a time, by their highest. */
        if (i % 8 == 0 && i + 8 <= count) {
            double high = scores[i];
            for (int64_t t = 1; t < 8; t++) high = scores[i + t] > high ? scores[i + t] : high;
            if (high <= best[0]) {
                i += 7;
                continue;
            }
        }
        double score = scores[i];
        if (score <= best[0]) continue;
        int64_t j = 1;
        while (j < k && best[j] < score) {
            best[j - 1] = best[j];
            ids[j - 1] = ids[j];
            j++;
        }
        best[j - 1] = score;
        ids[j - 1] = s->cand[i];
    }
    return best[0];
}

/* The k-th best (kth_best), its k best posted on the board if there is one. */
static double kth_posted(const Scratch *s, int64_t count) {
    double kth = kth_best(s, count);
    if (kth > -INFINITY) {
        *s->found_k = 1;
        if (s->board != NULL) post(s);
    }
    return kth;
}

#define LANES 16 /* binary searches run side by side, so that their cache misses overlap */

/* Add one term's weight (postings start..end) to each of the n passages `ids` it occurs in,
 * into scores[i] for ids[i]. Each passage is found by binary search,
 * LANES at a time in lockstep: every search over the same postings takes the same number of
 * steps, so the lanes' loads are independent and their cache misses overlap. */
static void look_up(const Query *q, const uint32_t *ids, int64_t n, int64_t start, int64_t end,
                    double idf, double *scores) {
    const uint32_t *docs = q->docs;
    int64_t length = end - start;
    if (length <= 0) return;
    for (int64_t i0 = 0; i0 < n; i0 += LANES) {
        int64_t lanes = n - i0 < LANES ? n - i0 : LANES;
        int64_t base[LANES];
        for (int64_t g = 0; g < lanes; g++) base[g] = start;
        for (int64_t left = length; left > 1;) {
            int64_t half = left / 2;
            for (int64_t g = 0; g < lanes; g++)
                base[g] = (int64_t)docs[base[g] + half] < ids[i0 + g] ? base[g] + half : base[g];
            left -= half;
            for (int64_t g = 0; g < lanes; g++) __builtin_prefetch(&docs[base[g] + left / 2]);
        }
        for (int64_t g = 0; g < lanes; g++) {
            int64_t d = ids[i0 + g], j = base[g] + ((int64_t)docs[base[g]] < d);
            if (j < end && (int64_t)docs[j] == d)
                scores[i0 + g] +=
                    weight(idf, q->ratios, q->n_lengths, q->tfs[j],
                           length_of(q->lengths16, q->lengths32, (uint32_t)d));
        }
    }
}

/* Add one term's weights to the live passages' scores. Few live passages: look each up
 * (binary search). Many: one pass over the postings, adding to every passage that still has
 * a slot, which by now are the live ones. */
static void probe(const Query *q, const Scratch *s, int64_t t, int64_t n_live) {
    int64_t start = q->lo[t], end = q->hi[t], length = end - start;
    double idf = q->idfs[t];
    if ((double)n_live * (log2((double)(length + 1)) + 1.0) < (double)length) {
        look_up(q, s->cand, n_live, start, end, idf, s->scores);
    } else {
        add_to_seen(q, s, start, end, end, idf);
    }
}
/* Keep the candidates that can still reach theta (their score plus `rest`, the most the terms
 * left can add, with a hair of margin for rounding) and clear the others' slots; each one cut
 * takes the place of the last one kept, whose slot follows it, so that a cut of a few moves a
 * few (the candidates' order is no ranking's: ties are broken by passage id at the end).
 * Returns how many are kept. */
static int64_t keep_reaching(const Scratch *s, int64_t count, double rest, double theta) {
    double *scores = s->scores;
    uint32_t *cand = s->cand, *slot = s->slot;
    int64_t n = count;
    for (int64_t i = 0; i < n; i++) {
        if ((scores[i] + rest) * (1.0 + 1e-9) >= theta) continue;
        slot[cand[i]] = 0;
        /* the last candidate that reaches it, the ones after it cleared on the way */
        while (--n > i && !((scores[n] + rest) * (1.0 + 1e-9) >= theta)) slot[cand[n]] = 0;
        if (n > i) {
            cand[i] = cand[n];
            scores[i] = scores[n];
            slot[cand[i]] = (uint32_t)(i + 1);
        }
    }
    return n;
}

/* Whether (score s1, passage d1) ranks below (s2, d2): lower score, or tied and later. */
static inline int worse(double s1, int64_t d1, double s2, int64_t d2) {
    return s1 < s2 || (s1 == s2 && d1 > d2);
}

typedef struct {
    double score;
    int64_t doc;
} Ranked;

/* Best first, ties by lower id (a stable sort by id, then by score descending). */
static int compare_ranked(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->score > y->score) return -1;
    if (x->score < y->score) return 1;
    return (x->doc > y->doc) - (x->doc < y->doc);
}

/* The k best of the live passages, best first, into out_docs/out_scores; clears their slots.
 * Returns how many (min(k, n_live)), or -1 if out of memory. */
static int64_t select_best(const Scratch *s, int64_t n_live) {
    int64_t size = s->k < n_live ? s->k : n_live, worst = 0;
    int64_t *best_docs = s->out_docs;
    double *best_scores = s->out_scores;
    for (int64_t i = 0; i < n_live; i++) {
        int64_t d = s->cand[i];
        double score = s->scores[i];
        if (i < size) {
            best_docs[i] = d;
            best_scores[i] = score;
            if (i == 0 || worse(score, d, best_scores[worst], best_docs[worst])) worst = i;
            continue;
        }
        if (!worse(best_scores[worst], best_docs[worst], score, d)) continue;
        best_docs[worst] = d;
        best_scores[worst] = score;
        for (int64_t j = 0; j < size; j++)
            if (worse(best_scores[j], best_docs[j], best_scores[worst], best_docs[worst]))
                worst = j;
    }
    uint32_t *slot = s->slot;
    const uint32_t *cand = s->cand;
    for (int64_t i = 0; i < n_live; i++) slot[cand[i]] = 0;
    Ranked *ranked = malloc((size_t)(size ? size : 1) * sizeof(Ranked));
    if (ranked == NULL) return -1;
    for (int64_t i = 0; i < size; i++) ranked[i] = (Ranked){best_scores[i], best_docs[i]};
    qsort(ranked, (size_t)size, sizeof(Ranked), compare_ranked);
    for (int64_t i = 0; i < size; i++) {
        best_docs[i] = ranked[i].doc;
        best_scores[i] = ranked[i].score;
    }
    free(ranked);
    return size;
}

/* A higher floor for the k-th best final score when terms t.. are left: the final scores of
 * the k passages kth_best last found best, their weights of terms t.. looked up (any k
 * passages' final scores bound the k-th best from below), each passage's once in a call
 * (the table `finals`: the sum worked out at an earlier term is the same final score, in
 * another order of additions). The floor is shaded by a hair, as these sums add the weights
 * in another order than the kernel will. Returns theta itself if kth_best never found k
 * passages, or if memory runs out. */
static double final_floor(const Query *q, Scratch *s, int64_t t, double theta) {
    int64_t k = s->k, n_new = 0;
    if (!*s->found_k || t >= q->n_terms) return theta;
    double *sums = calloc((size_t)k, sizeof(double));
    uint32_t *new_ids = malloc((size_t)k * sizeof(uint32_t));
    int64_t *new_at = malloc((size_t)k * sizeof(int64_t));
    if (sums == NULL || new_ids == NULL || new_at == NULL) {
        free(sums), free(new_ids), free(new_at);
        return theta;
    }
    double floor = INFINITY;
    for (int64_t i = 0; i < k; i++) { /* the finals known already; the others to look up */
        uint32_t d = s->best_ids[i];
        int64_t h = (int64_t)((d * 2654435761u) % FINALS);
        while (s->final_ids[h] && s->final_ids[h] != d + 1) h = (h + 1) % FINALS;
        if (s->final_ids[h]) {
            floor = s->finals[h] < floor ? s->finals[h] : floor;
        } else {
            new_ids[n_new] = d;
            new_at[n_new++] = h;
        }
    }
    for (int64_t u = t; u < q->n_terms && n_new; u++)
        look_up(q, new_ids, n_new, q->lo[u], q->hi[u], q->idfs[u], sums);
    for (int64_t i = 0; i < n_new; i++) {
        uint32_t d = new_ids[i];
        double final = s->scores[s->slot[d] - 1] + sums[i];
        floor = final < floor ? final : floor;
        if (s->n_finals < FINALS / 2) { /* else the table is left as it is: looked up again */
            int64_t h = new_at[i];
            while (s->final_ids[h]) h = (h + 1) % FINALS; /* an id new in this call */
            s->final_ids[h] = d + 1;
            s->finals[h] = final;
            s->n_finals++;
        }
    }
    free(sums), free(new_ids), free(new_at);
    floor *= 1.0 - 1e-9;
    return floor > theta ? floor : theta;
}

/* The top k once term t is reached: with terms left, they can lift no unseen passage above
 * theta, so only the passages that can still reach it are looked up in their postings. After
 * each term theta is worked out again over those passages (their scores only grow) and raised
 * to the final scores of the k best of them, and the ones that can no longer reach it leave,
 * so each later term is looked up for fewer. */
static int64_t finish(const Query *q, Scratch *s, int64_t count, int64_t t, double theta) {
    if (count > FLOOR_FROM * s->k) theta = final_floor(q, s, t, theta);
    theta = shared_theta(s, theta);
    int64_t n_live = keep_reaching(s, count, s->left[t], theta);
    for (int64_t u = t; u < q->n_terms; u++) {
        probe(q, s, u, n_live);
        if (u + 1 < q->n_terms && n_live > s->k) {
            double kth = kth_posted(s, n_live);
            theta = shared_theta(s, kth > theta ? kth : theta);
            theta = final_floor(q, s, u + 1, theta);
            n_live = keep_reaching(s, n_live, s->left[u + 1], theta);
        }
    }
    return select_best(s, n_live);
}

/* Per-term MaxScore (kernels.top_k). */
static int64_t run_top_k(const Query *q, Scratch *s) {
    int64_t n_terms = q->n_terms, count = 0, t = 0;
    double theta = -INFINITY;
    /* The k-th best partial score is at most the weights added so far ("done"), and at most
     * theta as last computed plus the weights added since: done + slack, slack <= 0. */
    double slack = 0.0;
    while (t < n_terms && !(s->left[t] < theta)) {
        double idf = q->idfs[t];
        count = scan(q, s, q->lo[t], q->hi[t], q->hi[t], idf, count);
        t++;
        double done = s->left[0] - s->left[t];
        /* The k-th best costs a pass over the candidates: only when it could stop the scan. */
        if (t < n_terms && s->left[t] < done + slack) {
            double kth = kth_posted(s, count);
            slack = kth - done < 0.0 ? kth - done : 0.0;
            theta = kth > theta ? kth : theta;
        }
        theta = shared_theta(s, theta); /* the other half's progress, if ranked beside */
    }
    return finish(q, s, count, t, theta);
}

/* Block bounds of a query's postings (kernels.top_k_blocks). */
typedef struct {
    const int64_t *first;
    const uint8_t *max_tf;
    const uint32_t *min_len;
    int64_t block;
    double b;
    double avgdl;
    int usable;
} Blocks;

/* Highest weight a block can hold: the weight grows with the frequency and falls with the
 * passage length; a hair above, so that rounding never makes it a little low. */
static inline double block_bound(double idf, uint8_t max_tf, uint32_t min_len, double k1,
                                 double b, double avgdl) {
    double tf = (double)max_tf;
    return idf * (tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * (double)min_len / avgdl))) *
           (1.0 + 1e-9);
}

/* Block-max MaxScore (kernels.top_k_blocks). */
static int64_t run_top_k_blocks(const Query *q, Scratch *s, const Blocks *bl) {
    int64_t n_terms = q->n_terms, count = 0, t = 0;
    double theta = -INFINITY;
    double slack = 0.0; /* as in run_top_k: the k-th best partial score is at most done + slack */
    while (t < n_terms && !(s->left[t] < theta)) {
        double idf = q->idfs[t];
        /* Blocks are counted from the term's first posting; the range asked for may start
         * and end inside one. */
        int64_t start = q->starts[t], end = q->hi[t];
        for (int64_t j0 = q->lo[t]; j0 < end;) {
            int64_t at = (j0 - start) / bl->block;
            int64_t j1 = start + (at + 1) * bl->block < end ? start + (at + 1) * bl->block : end;
            at += bl->first[t];
            if (bl->usable && theta > -INFINITY) {
                double bound = block_bound(idf, bl->max_tf[at], bl->min_len[at], q->k1, bl->b,
                                           bl->avgdl);
                if (bound + s->left[t + 1] < theta) { /* no new passage here reaches the top k */
                    add_to_seen(q, s, j0, j1, end, idf);
                    j0 = j1;
                    continue;
                }
            }
            count = scan(q, s, j0, j1, end, idf, count);
            j0 = j1;
        }
        t++;
        if (t == n_terms) break;
        double done = s->left[0] - s->left[t];
        /* The k-th best costs a pass over the candidates: only when it could stop the scan
         * (working it out for blocks to skip as well cost more than they saved, RESULTS.md). */
        if (s->left[t] < done + slack) {
            double kth = kth_posted(s, count);
            slack = kth - done < 0.0 ? kth - done : 0.0;
            theta = kth > theta ? kth : theta;
        }
        theta = shared_theta(s, theta); /* the other half's progress, if ranked beside */
    }
    return finish(q, s, count, t, theta);
}

/* Views the scratch and output arrays of a top-k call and checks their lengths. */
static int view_scratch(Views *views, Scratch *s, const Query *q, PyObject *upper,
                        PyObject *scores, PyObject *slots, PyObject *cand, PyObject *out_docs,
                        PyObject *out_scores, Py_ssize_t k, const double **upper_data) {
    Py_ssize_t n_upper, n_scores, n_slots, n_cand, n_out_docs, n_out_scores;
    if (!(*upper_data = view(views, upper, "upper", F64, 8, 0, &n_upper))) return -1;
    if (!(s->scores = view(views, scores, "scores", F64, 8, 1, &n_scores))) return -1;
    if (!(s->slot = view(views, slots, "slots", U32, 4, 1, &n_slots))) return -1;
    if (!(s->cand = view(views, cand, "cand", U32, 4, 1, &n_cand))) return -1;
    if (!(s->out_docs = view(views, out_docs, "out_docs", I64, 8, 1, &n_out_docs))) return -1;
    if (!(s->out_scores = view(views, out_scores, "out_scores", F64, 8, 1, &n_out_scores)))
        return -1;
    if (n_upper != q->n_terms) return length_error("upper must hold one entry per term");
    if (n_scores != q->size || n_slots != q->size || n_cand != q->size)
        return length_error("scores, slots and cand must have the length of lengths");
    if (k < 1) return length_error("k must be at least 1");
    Py_ssize_t room = k < q->size ? k : q->size;
    if (n_out_docs < room || n_out_scores < room)
        return length_error("out_docs and out_scores must hold min(k, passages) entries");
    s->k = k;
    return 0;
}

/* Views the board shared by two calls ranking halves of the passages (None: no board) and
 * checks it holds a sequence number and k values for each half. */
static int view_board(Views *views, Scratch *s, PyObject *board, Py_ssize_t half) {
    if (board == Py_None) return 0;
    Py_ssize_t n_board;
    if (!(s->board = view(views, board, "board", U64, 8, 1, &n_board))) return -1;
    if (n_board != 2 * (s->k + 1)) return length_error("board must hold 2 (k + 1) entries");
    if (half != 0 && half != 1) return length_error("half must be 0 or 1");
    s->half = half;
    return 0;
}

/* Runs a top-k kernel without the GIL over the passages from..to - 1, with its small scratch;
 * the count, or -1 (error set). */
static Py_ssize_t run(Query *q, Scratch *s, const double *upper, const Blocks *blocks,
                      Py_ssize_t from, Py_ssize_t to) {
    int64_t found = -1;
    if (from < 0 || to < from) {
        length_error("the passages must run from a first (at least 0) to an end after it");
        return -1;
    }
    int64_t *range = malloc((size_t)(2 * q->n_terms + 1) * sizeof(int64_t));
    s->left = malloc((size_t)(q->n_terms + 1) * sizeof(double));
    /* kth_best fills k entries only when there are k candidates, so never more than size */
    size_t room = (size_t)(s->k < q->size ? s->k : (q->size ? q->size : 1));
    s->best = malloc(room * sizeof(double));
    s->best_ids = malloc(room * sizeof(uint32_t));
    s->final_ids = calloc(FINALS, sizeof(uint32_t));
    s->finals = malloc(FINALS * sizeof(double));
    s->n_finals = 0;
    int found_k = 0;
    s->found_k = &found_k;
    if (range != NULL && s->left != NULL && s->best != NULL && s->best_ids != NULL &&
        s->final_ids != NULL && s->finals != NULL) {
        Py_BEGIN_ALLOW_THREADS;
        passages_within(q, from, to, range);
        s->left[q->n_terms] = 0.0;
        for (int64_t t = q->n_terms - 1; t >= 0; t--) s->left[t] = s->left[t + 1] + upper[t];
        found = blocks ? run_top_k_blocks(q, s, blocks) : run_top_k(q, s);
        Py_END_ALLOW_THREADS;
    }
    free(range);
    free(s->left);
    free(s->best);
    free(s->best_ids);
    free(s->final_ids);
    free(s->finals);
    if (found < 0) PyErr_NoMemory();
    return found;
}

PyDoc_STRVAR(top_k_doc,
             "top_k(docs, tfs, starts, ends, idfs, upper, lengths, ratios, k, scores, slots, "
             "cand, out_docs, out_scores, first, end, board, half)\n--\n\n"
             "Per-term MaxScore top k of the passages first..end - 1 into out_docs/out_scores, "
             "best first; returns how many. With a board (or None), its slot `half` is shared "
             "with a call ranking the other passages.");

static PyObject *top_k(PyObject *module, PyObject *args) {
    PyObject *docs, *tfs, *starts, *ends, *idfs, *upper, *lengths, *ratios, *scores, *slots;
    PyObject *cand;
    PyObject *out_d, *out_s, *board;
    Py_ssize_t k, from, to, half;
    if (!PyArg_ParseTuple(args, "OOOOOOOOnOOOOOnnOn:top_k", &docs, &tfs, &starts, &ends, &idfs,
                          &upper, &lengths, &ratios, &k, &scores, &slots, &cand, &out_d, &out_s,
                          &from, &to, &board, &half))
        return NULL;
    Views views = {.n = 0};
    Query q = {0};
    Scratch s = {0};
    const double *upper_data;
    Py_ssize_t found = -1;
    if (view_query(&views, &q, docs, tfs, starts, ends, idfs, lengths, ratios) == 0 &&
        view_scratch(&views, &s, &q, upper, scores, slots, cand, out_d, out_s, k, &upper_data) ==
            0 &&
        view_board(&views, &s, board, half) == 0)
        found = run(&q, &s, upper_data, NULL, from, to);
    release(&views);
    return found < 0 ? NULL : PyLong_FromSsize_t(found);
}

PyDoc_STRVAR(top_k_blocks_doc,
             "top_k_blocks(docs, tfs, starts, ends, idfs, upper, lengths, ratios, k1, k, scores, "
             "slots, cand, out_docs, out_scores, first, max_tf, min_len, block, b, avgdl, usable, "
             "first_passage, end, board, half)\n--\n\n"
             "Block-max MaxScore top k of the passages first_passage..end - 1 into "
             "out_docs/out_scores, best first; returns how many (the board as top_k's).");

/* Views the block arrays and checks that each term's blocks are there. */
static int view_blocks(Views *views, Blocks *bl, const Query *q, PyObject *first,
                       PyObject *max_tf, PyObject *min_len) {
    Py_ssize_t n_first, n_max_tf, n_min_len;
    if (!(bl->first = view(views, first, "first", I64, 8, 0, &n_first))) return -1;
    if (!(bl->max_tf = view(views, max_tf, "max_tf", U8, 1, 0, &n_max_tf))) return -1;
    if (!(bl->min_len = view(views, min_len, "min_len", U32, 4, 0, &n_min_len))) return -1;
    if (n_first != q->n_terms) return length_error("first must hold one entry per term");
    if (n_max_tf != n_min_len) return length_error("max_tf and min_len must have one length");
    if (bl->block < 1) return length_error("block must be at least 1");
    for (int64_t t = 0; t < q->n_terms; t++) {
        int64_t n_blocks = (q->ends[t] - q->starts[t] + bl->block - 1) / bl->block;
        if (bl->first[t] < 0 || bl->first[t] + n_blocks > n_max_tf)
            return length_error("each term's blocks must lie within max_tf and min_len");
    }
    return 0;
}

static PyObject *top_k_blocks(PyObject *module, PyObject *args) {
    PyObject *docs, *tfs, *starts, *ends, *idfs, *upper, *lengths, *ratios, *scores, *slots;
    PyObject *cand;
    PyObject *out_d, *out_s, *first, *max_tf, *min_len, *board;
    double k1;
    Py_ssize_t k, block, from, to, half;
    Blocks bl = {0};
    if (!PyArg_ParseTuple(args, "OOOOOOOOdnOOOOOOOOnddpnnOn:top_k_blocks", &docs, &tfs, &starts,
                          &ends, &idfs, &upper, &lengths, &ratios, &k1, &k, &scores, &slots,
                          &cand, &out_d, &out_s, &first, &max_tf, &min_len, &block, &bl.b,
                          &bl.avgdl, &bl.usable, &from, &to, &board, &half))
        return NULL;
    bl.block = block;
    Views views = {.n = 0};
    Query q = {.k1 = k1};
    Scratch s = {0};
    const double *upper_data;
    Py_ssize_t found = -1;
    if (view_query(&views, &q, docs, tfs, starts, ends, idfs, lengths, ratios) == 0 &&
        view_scratch(&views, &s, &q, upper, scores, slots, cand, out_d, out_s, k, &upper_data) ==
            0 &&
        view_blocks(&views, &bl, &q, first, max_tf, min_len) == 0 &&
        view_board(&views, &s, board, half) == 0)
        found = run(&q, &s, upper_data, &bl, from, to);
    release(&views);
    return found < 0 ? NULL : PyLong_FromSsize_t(found);
}

PyDoc_STRVAR(scores_of_doc,
             "scores_of(docs, tfs, starts, ends, idfs, lengths, ratios, targets, out)\n--\n\n"
             "Adds each target passage's exact score to out (zeroed), by binary search in each "
             "term's postings.");

static PyObject *scores_of(PyObject *module, PyObject *args) {
    PyObject *docs, *tfs, *starts, *ends, *idfs, *lengths, *ratios, *targets, *out;
    if (!PyArg_ParseTuple(args, "OOOOOOOOO:scores_of", &docs, &tfs, &starts, &ends, &idfs,
                          &lengths, &ratios, &targets, &out))
        return NULL;
    Views views = {.n = 0};
    Query q = {0};
    Py_ssize_t n_targets, n_out;
    const uint32_t *target = NULL;
    double *sums = NULL;
    int ok = view_query(&views, &q, docs, tfs, starts, ends, idfs, lengths, ratios) == 0 &&
             (target = view(&views, targets, "targets", U32, 4, 0, &n_targets)) &&
             (sums = view(&views, out, "out", F64, 8, 1, &n_out));
    if (ok && n_out != n_targets) ok = length_error("out must have the length of targets") == 0;
    for (Py_ssize_t i = 0; ok && i < n_targets; i++)
        if ((int64_t)target[i] >= q.size)
            ok = length_error("targets must be passage ids below the passage count") == 0;
    if (ok) {
        Py_BEGIN_ALLOW_THREADS;
        for (int64_t t = 0; t < q.n_terms; t++)
            look_up(&q, target, n_targets, q.starts[t], q.ends[t], q.idfs[t], sums);
        Py_END_ALLOW_THREADS;
    }
    release(&views);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(drop_pages_doc,
             "drop_pages(mapping)\n--\n\n"
             "Unmaps the pages of a read-only file mapping (an mmap.mmap) from the process "
             "without the GIL: they stay in the OS cache and are mapped again when read.");

/* MADV_DONTNEED on a read-only file mapping: its pages leave the process (its resident
 * memory) and stay in the OS cache. Python's mmap.madvise holds the GIL meanwhile (about
 * 0.25 ms after a few questions at 1M passages), which this lets another thread do while
 * the searching one goes on. Refuses anything but a read-only mmap.mmap: on memory of the
 * process's own the same call would zero it. */
static PyObject *drop_pages(PyObject *module, PyObject *args) {
    PyObject *mapping;
    if (!PyArg_ParseTuple(args, "O:drop_pages", &mapping)) return NULL;
    if (strcmp(Py_TYPE(mapping)->tp_name, "mmap.mmap") != 0) {
        PyErr_SetString(PyExc_TypeError, "drop_pages takes an mmap.mmap");
        return NULL;
    }
    Py_buffer buffer;
    if (PyObject_GetBuffer(mapping, &buffer, PyBUF_SIMPLE) < 0) return NULL;
    if (!buffer.readonly) {
        PyBuffer_Release(&buffer);
        PyErr_SetString(PyExc_ValueError, "drop_pages takes a read-only mapping");
        return NULL;
    }
    int failed = 0;
    if (buffer.len > 0) {
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t start = (uintptr_t)buffer.buf & ~(page - 1); /* a mapping starts on a page */
        size_t length = (size_t)((uintptr_t)buffer.buf + (uintptr_t)buffer.len - start);
        Py_BEGIN_ALLOW_THREADS;
        failed = madvise((void *)start, length, MADV_DONTNEED) != 0;
        Py_END_ALLOW_THREADS;
    }
    PyBuffer_Release(&buffer);
    if (failed) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(block_bound_doc,
             "block_bound(idf, max_tf, min_len, k1, b, avgdl)\n--\n\n"
             "Highest weight a block can hold, from its highest frequency and shortest passage.");

static PyObject *block_bound_py(PyObject *module, PyObject *args) {
    double idf, k1, b, avgdl;
    unsigned long long max_tf, min_len;
    if (!PyArg_ParseTuple(args, "dKKddd:block_bound", &idf, &max_tf, &min_len, &k1, &b, &avgdl))
        return NULL;
    if (max_tf > UINT8_MAX || min_len > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "max_tf must fit 8 bits and min_len 32 bits");
        return NULL;
    }
    return PyFloat_FromDouble(
        block_bound(idf, (uint8_t)max_tf, (uint32_t)min_len, k1, b, avgdl));
}

/* --- The reader's span trees (retrieval/kernels.py `Forest`) -------------------------- */

/* A tree ensemble laid out for QuickScorer (Lucchese et al., SIGIR 2015): every split of
 * every tree, sorted by feature and then by threshold, with the leaves of its tree that a row
 * can still reach when it goes right there (each tree's leaves numbered left to right, so the
 * left subtree a split clears is a run of bits). A row clears, feature by feature, the masks
 * of the splits whose threshold it exceeds, in threshold order, stopping at the first it does
 * not; in each tree it exits at the leftmost leaf left. The work is a run of independent
 * ANDs instead of one chain of dependent loads a tree: 0.37 of the time the walk down each
 * tree took on the span rows of 297 1M questions (RESULTS.md "Issue 15, seventh pass"). */
typedef struct {
    const int64_t *starts;  /* per feature + 1: its splits are starts[g]..starts[g + 1] - 1 */
    const double *thresholds;
    const int64_t *trees;   /* per split: its tree */
    const uint64_t *masks;  /* per split: its tree's leaves a row going right can still reach */
    const double *values;   /* per leaf, each tree's left to right, trees in order */
    const int64_t *first;   /* per tree + 1: its leaves are first[t]..first[t + 1] - 1 */
    Py_ssize_t n_trees, n_features;
} Forest;

/* Views the forest's arrays and checks that every index stays within them: splits by
 * feature from 0 to their count, each split's tree one of the trees, each tree 1 to 64
 * leaves. 0, or -1 with ValueError. (That thresholds ascend within a feature and that masks
 * fit their trees is the layout's, `kernels.Forest.of`: a wrong one gives wrong sums, never
 * a read outside the arrays.) */
static int view_forest(Views *views, Forest *f, PyObject *starts, PyObject *thresholds,
                       PyObject *trees, PyObject *masks, PyObject *values, PyObject *first,
                       Py_ssize_t n_features) {
    Py_ssize_t n_starts, n_splits, n_trees_of, n_masks, n_values, n_first;
    if (!(f->starts = view(views, starts, "starts", I64, 8, 0, &n_starts))) return -1;
    if (!(f->thresholds = view(views, thresholds, "thresholds", F64, 8, 0, &n_splits)))
        return -1;
    if (!(f->trees = view(views, trees, "trees", I64, 8, 0, &n_trees_of))) return -1;
    if (!(f->masks = view(views, masks, "masks", U64, 8, 0, &n_masks))) return -1;
    if (!(f->values = view(views, values, "values", F64, 8, 0, &n_values))) return -1;
    if (!(f->first = view(views, first, "first", I64, 8, 0, &n_first))) return -1;
    if (n_starts != n_features + 1)
        return length_error("starts must hold n_features + 1 entries");
    if (n_trees_of != n_splits || n_masks != n_splits)
        return length_error("thresholds, trees and masks must have one length");
    if (n_first < 1 || f->first[0] != 0 || f->first[n_first - 1] != n_values)
        return length_error("first must run from 0 to the number of values");
    for (Py_ssize_t t = 0; t + 1 < n_first; t++)
        if (f->first[t + 1] - f->first[t] < 1 || f->first[t + 1] - f->first[t] > 64)
            return length_error("a tree must have 1 to 64 leaves");
    if (f->starts[0] != 0 || f->starts[n_features] != n_splits)
        return length_error("starts must run from 0 to the number of splits");
    for (Py_ssize_t g = 0; g < n_features; g++)
        if (f->starts[g + 1] < f->starts[g]) return length_error("starts must ascend");
    for (Py_ssize_t i = 0; i < n_splits; i++)
        if (f->trees[i] < 0 || f->trees[i] >= n_first - 1)
            return length_error("a split's tree must be one of the trees");
    f->n_trees = n_first - 1;
    f->n_features = n_features;
    return 0;
}

/* One row's sum of its exit leaves' values, added in tree order (the bits of a walk down
 * each tree in turn); `reach` is scratch, a mask per tree. */
static double forest_sum(const Forest *f, const double *row, uint64_t *reach) {
    for (Py_ssize_t t = 0; t < f->n_trees; t++) reach[t] = ~(uint64_t)0;
    for (Py_ssize_t g = 0; g < f->n_features; g++) {
        double x = row[g];
        for (int64_t j = f->starts[g], end = f->starts[g + 1]; j < end && x > f->thresholds[j];
             j++)
            reach[f->trees[j]] &= f->masks[j];
    }
    double sum = 0.0;
    for (Py_ssize_t t = 0; t < f->n_trees; t++) {
        int64_t n = f->first[t + 1] - f->first[t];
        /* the last leaf's bit set too, so that even a mask inconsistent with its tree ends
         * within the tree's leaves */
        sum += f->values[f->first[t] + __builtin_ctzll(reach[t] | ((uint64_t)1 << (n - 1)))];
    }
    return sum;
}

PyDoc_STRVAR(forest_sums_doc,
             "forest_sums(rows, n_features, starts, thresholds, trees, masks, values, first, "
             "out)\n--\n\n"
             "Writes into out each row's sum of its leaf values over the trees, in tree order; "
             "rows is the row-major matrix flattened, the forest laid out by kernels.Forest.");

static PyObject *forest_sums(PyObject *module, PyObject *args) {
    PyObject *rows, *starts, *thresholds, *trees, *masks, *values, *first, *out;
    Py_ssize_t n_features;
    if (!PyArg_ParseTuple(args, "OnOOOOOOO:forest_sums", &rows, &n_features, &starts,
                          &thresholds, &trees, &masks, &values, &first, &out))
        return NULL;
    Views views = {.n = 0};
    Forest f;
    Py_ssize_t n_cells, n_rows;
    const double *x = NULL;
    double *sums = NULL;
    int ok = n_features > 0 || length_error("n_features must be positive") == 0;
    ok = ok && (x = view(&views, rows, "rows", F64, 8, 0, &n_cells)) &&
         (sums = view(&views, out, "out", F64, 8, 1, &n_rows)) &&
         view_forest(&views, &f, starts, thresholds, trees, masks, values, first, n_features) == 0;
    if (ok && n_cells != n_rows * n_features)
        ok = length_error("rows must hold n_features values for each entry of out") == 0;
    /* one more than the trees: malloc(0) may return NULL */
    uint64_t *reach = ok ? malloc(((size_t)f.n_trees + 1) * sizeof(uint64_t)) : NULL;
    if (ok && reach == NULL) {
        PyErr_NoMemory();
        ok = 0;
    }
    if (ok) {
        Py_BEGIN_ALLOW_THREADS;
        for (Py_ssize_t r = 0; r < n_rows; r++)
            sums[r] = forest_sum(&f, x + r * n_features, reach);
        Py_END_ALLOW_THREADS;
    }
    free(reach);
    release(&views);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* --- The reader's candidate spans (retrieval/reader.py `span_candidates`) --------------- */

PyDoc_STRVAR(span_runs_doc,
             "span_runs(lengths, stops, bad_first, bad_last, matched, n_chars, segments, "
             "chars, long_segments, long_chars, out)\n--\n\n"
             "Writes into out (rows of start, end, first and last segment, flattened) the "
             "candidate spans of a sentence of n_chars characters in the order they are found: "
             "for each segment not bad_first, the runs of up to `segments` segments and "
             "`chars` characters from it, up to its clause's stop, that end on a segment not "
             "bad_last, then the run that ends right before the stop if it has more segments "
             "but at most long_segments and long_chars; then the matched spans (start, end "
             "pairs, first and last -1) not found before. Returns the number of rows.");

static PyObject *span_runs(PyObject *module, PyObject *args) {
    PyObject *lengths_in, *stops_in, *first_in, *last_in, *matched_in, *out_in;
    Py_ssize_t n_chars, max_segments, max_chars, long_segments, long_chars;
    if (!PyArg_ParseTuple(args, "OOOOOnnnnnO:span_runs", &lengths_in, &stops_in, &first_in,
                          &last_in, &matched_in, &n_chars, &max_segments, &max_chars,
                          &long_segments, &long_chars, &out_in))
        return NULL;
    Views views = {.n = 0};
    Py_ssize_t count, n_stops, n_first, n_last, n_matched, n_out;
    const int64_t *lengths, *matched;
    const uint8_t *stops, *bad_first, *bad_last;
    int64_t *out;
    int64_t *bounds = NULL, *next_stop = NULL;
    uint8_t *seen = NULL;
    Py_ssize_t rows = -1;
    if (!(lengths = view(&views, lengths_in, "lengths", I64, 8, 0, &count)) ||
        !(stops = view(&views, stops_in, "stops", BOOL, 1, 0, &n_stops)) ||
        !(bad_first = view(&views, first_in, "bad_first", BOOL, 1, 0, &n_first)) ||
        !(bad_last = view(&views, last_in, "bad_last", BOOL, 1, 0, &n_last)) ||
        !(matched = view(&views, matched_in, "matched", I64, 8, 0, &n_matched)) ||
        !(out = view(&views, out_in, "out", I64, 8, 1, &n_out)))
        goto done;
    if (n_stops != count || n_first != count || n_last != count) {
        length_error("stops, bad_first and bad_last must have one entry for each segment");
        goto done;
    }
    if (n_matched % 2 || n_chars < 0 || max_segments < 1 || long_segments < max_segments) {
        length_error("matched must hold pairs, n_chars be >= 0 and long_segments >= segments");
        goto done;
    }
    /* Runs never pass the last segment: limits beyond the count change nothing (and their
     * sums below cannot overflow). At most that many runs from each segment, and one longer. */
    if (max_segments > count) max_segments = count > 0 ? count : 1;
    if (long_segments > count + max_segments) long_segments = count + max_segments;
    Py_ssize_t per_segment = max_segments + 1;
    if (n_out / 4 < count * per_segment + n_matched / 2) {
        length_error("out must hold 4 * (segments * (segments + 1) + matched pairs) values");
        goto done;
    }
    bounds = malloc(((size_t)count + 1) * sizeof(int64_t));
    next_stop = malloc(((size_t)count + 1) * sizeof(int64_t));
    /* one flag per (start, end) with start < end <= n_chars: which spans are found already */
    size_t side = (size_t)n_chars + 1;
    seen = calloc(side, side); /* calloc checks side * side for overflow */
    if (bounds == NULL || next_stop == NULL || seen == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    bounds[0] = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (lengths[i] < 1) {
            length_error("a segment must have at least one character");
            goto done;
        }
        bounds[i + 1] = bounds[i] + lengths[i];
    }
    if (bounds[count] > n_chars) {
        length_error("the segments must fit in n_chars characters");
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_matched; i += 2)
        if (matched[i] < 0 || matched[i] >= matched[i + 1] || matched[i + 1] > n_chars) {
            length_error("a matched span must be start < end <= n_chars");
            goto done;
        }
    next_stop[count] = count; /* the first stop at or after each segment */
    for (Py_ssize_t k = count - 1; k >= 0; k--) next_stop[k] = stops[k] ? k : next_stop[k + 1];
    rows = 0;
#define FOUND(a, b, f, l)                                                                          \
    do {                                                                                           \
        seen[(size_t)(a) * side + (size_t)(b)] = 1;                                                \
        out[4 * rows] = (a), out[4 * rows + 1] = (b), out[4 * rows + 2] = (f);                     \
        out[4 * rows + 3] = (l), rows++;                                                           \
    } while (0)
    for (Py_ssize_t i = 0; i < count; i++) {
        if (bad_first[i]) continue;
        int64_t start = bounds[i], stop = next_stop[i];
        int64_t last = i + max_segments < stop ? i + max_segments : stop;
        for (int64_t j = i; j < last; j++) {
            if (bounds[j + 1] - start > max_chars) break;
            if (!bad_last[j]) FOUND(start, bounds[j + 1], i, j);
        }
        /* the longer run that ends right before the clause's stop */
        int64_t j = stop - 1;
        int64_t until = i + long_segments < count - 1 ? i + long_segments : count - 1;
        if (i + max_segments <= j && j < until && bounds[j + 1] - start <= long_chars &&
            !bad_last[j])
            FOUND(start, bounds[j + 1], i, j);
    }
    for (Py_ssize_t i = 0; i < n_matched; i += 2)
        if (!seen[(size_t)matched[i] * side + (size_t)matched[i + 1]])
            FOUND(matched[i], matched[i + 1], -1, -1);
#undef FOUND
done:
    free(bounds);
    free(next_stop);
    free(seen);
    release(&views);
    if (rows < 0) return NULL;
    return PyLong_FromSsize_t(rows);
}

/* --- The question at a span's edges (retrieval/reader.py `_span_text_parts`) ------------ */

/* Whether the n code points at `piece` occur together in q (`in` on strings). */
static int holds_run(const uint32_t *q, Py_ssize_t nq, const uint32_t *piece, Py_ssize_t n) {
    for (Py_ssize_t at = 0; at + n <= nq; at++) {
        Py_ssize_t i = 0;
        while (i < n && q[at + i] == piece[i]) i++;
        if (i == n) return 1;
    }
    return 0;
}

PyDoc_STRVAR(edge_sides_doc,
             "edge_sides(bare, kept, left, right, question, out)\n--\n\n"
             "For each offset of a sentence (kept: the characters before it that are not "
             "punctuation, into bare, the sentence without them), the question at a span's "
             "edge there, into out (2 x offsets x 2, flattened): as a start, how many "
             "characters before it end as left does (at most 6) and how many occur together "
             "in the question (at most 8, / 8); as an end, the same after it against right. "
             "0 where the character beside the edge is not one of the question's.");

static PyObject *edge_sides(PyObject *module, PyObject *args) {
    PyObject *bare_in, *kept_in, *left_in, *right_in, *question_in, *out_in;
    if (!PyArg_ParseTuple(args, "OOOOOO:edge_sides", &bare_in, &kept_in, &left_in, &right_in,
                          &question_in, &out_in))
        return NULL;
    Views views = {.n = 0};
    Py_ssize_t nb, n_kept, nl, nr, nq, n_out;
    const uint32_t *bare, *left, *right, *q;
    const int64_t *kept;
    double *out;
    int ok = (bare = view(&views, bare_in, "bare", U32, 4, 0, &nb)) &&
             (kept = view(&views, kept_in, "kept", I64, 8, 0, &n_kept)) &&
             (left = view(&views, left_in, "left", U32, 4, 0, &nl)) &&
             (right = view(&views, right_in, "right", U32, 4, 0, &nr)) &&
             (q = view(&views, question_in, "question", U32, 4, 0, &nq)) &&
             (out = view(&views, out_in, "out", F64, 8, 1, &n_out));
    if (ok && n_out != 4 * n_kept) ok = length_error("out must hold 4 values an offset") == 0;
    for (Py_ssize_t s = 0; ok && s < n_kept; s++)
        if (kept[s] < 0 || kept[s] > nb) ok = length_error("kept must stay within bare") == 0;
    if (ok) {
        for (Py_ssize_t s = 0; s < n_kept; s++) {
            double *start = out + 2 * s, *end = out + 2 * (n_kept + s);
            int64_t k = kept[s];
            start[0] = start[1] = end[0] = end[1] = 0.0;
            if (k > 0 && holds_run(q, nq, &bare[k - 1], 1)) { /* the question before it */
                Py_ssize_t n = 0;
                while (n < k && n < nl && bare[k - 1 - n] == left[nl - 1 - n]) n++;
                start[0] = (double)(n < 6 ? n : 6);
                n = 0;
                while (n < k && n < 8 && holds_run(q, nq, &bare[k - n - 1], n + 1)) n++;
                start[1] = (double)n / 8.0;
            }
            if (k < nb && holds_run(q, nq, &bare[k], 1)) { /* and after it */
                Py_ssize_t n = 0;
                while (n < nb - k && n < nr && bare[k + n] == right[n]) n++;
                end[0] = (double)(n < 6 ? n : 6);
                n = 0;
                while (n < nb - k && n < 8 && holds_run(q, nq, &bare[k], n + 1)) n++;
                end[1] = (double)n / 8.0;
            }
        }
    }
    release(&views);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* --- The reader's word covers (retrieval/reader.py `Sentences`, `sentence_rows`) ---------- */

PyDoc_STRVAR(held_sums_doc,
             "held_sums(needles, weights, texts)\n--\n\n"
             "For each text, the sum of the weights of the needles it holds (needle in text), "
             "added in the needles' order from 0.0, as a list of floats; weights None counts "
             "them.");

static PyObject *held_sums(PyObject *module, PyObject *args) {
    PyObject *needles_in, *weights_in, *texts_in;
    if (!PyArg_ParseTuple(args, "OOO:held_sums", &needles_in, &weights_in, &texts_in))
        return NULL;
    PyObject *needles = PySequence_Fast(needles_in, "needles must be a sequence");
    PyObject *weights = NULL, *texts = NULL, *out = NULL;
    double *w = NULL;
    if (needles == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(needles);
    w = malloc(((size_t)n + 1) * sizeof(double));
    if (w == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_Check(PySequence_Fast_GET_ITEM(needles, i))) {
            PyErr_SetString(PyExc_TypeError, "needles must be strings");
            goto done;
        }
        w[i] = 1.0;
    }
    if (weights_in != Py_None) {
        weights = PySequence_Fast(weights_in, "weights must be a sequence or None");
        if (weights == NULL) goto done;
        if (PySequence_Fast_GET_SIZE(weights) != n) {
            PyErr_SetString(PyExc_ValueError, "weights must have one entry for each needle");
            goto done;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            w[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(weights, i));
            if (w[i] == -1.0 && PyErr_Occurred()) goto done;
        }
    }
    texts = PySequence_Fast(texts_in, "texts must be a sequence");
    if (texts == NULL) goto done;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(texts);
    out = PyList_New(m);
    if (out == NULL) goto done;
    for (Py_ssize_t j = 0; j < m; j++) {
        PyObject *text = PySequence_Fast_GET_ITEM(texts, j);
        if (!PyUnicode_Check(text)) {
            PyErr_SetString(PyExc_TypeError, "texts must be strings");
            Py_CLEAR(out);
            goto done;
        }
        double sum = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) {
            /* what `in` finds: the same search of the one string in the other */
            Py_ssize_t at = PyUnicode_Find(text, PySequence_Fast_GET_ITEM(needles, i), 0,
                                           PY_SSIZE_T_MAX, 1);
            if (at == -2) {
                Py_CLEAR(out);
                goto done;
            }
            if (at >= 0) sum += w[i];
        }
        PyObject *value = PyFloat_FromDouble(sum);
        if (value == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, j, value);
    }
done:
    free(w);
    Py_XDECREF(needles);
    Py_XDECREF(weights);
    Py_XDECREF(texts);
    return out;
}

/* --- The reader's span F1 (retrieval/reader.py `expected_f1_best`) --------------------- */

PyDoc_STRVAR(span_f1_doc,
             "span_f1(starts, ends, likely, out)\n--\n\n"
             "Writes into out, row-major spans x likely spans, the F1 of each span against each "
             "of the spans `likely` indexes: 2 overlap / (both lengths), in characters.");

static PyObject *span_f1(PyObject *module, PyObject *args) {
    PyObject *starts_obj, *ends_obj, *likely_obj, *out_obj;
    if (!PyArg_ParseTuple(args, "OOOO:span_f1", &starts_obj, &ends_obj, &likely_obj, &out_obj))
        return NULL;
    Views views = {.n = 0};
    Py_ssize_t n, n_ends, m, n_out;
    const int64_t *starts = NULL, *ends = NULL, *likely = NULL;
    double *out = NULL;
    int ok = (starts = view(&views, starts_obj, "starts", I64, 8, 0, &n)) &&
             (ends = view(&views, ends_obj, "ends", I64, 8, 0, &n_ends)) &&
             (likely = view(&views, likely_obj, "likely", I64, 8, 0, &m)) &&
             (out = view(&views, out_obj, "out", F64, 8, 1, &n_out));
    if (ok && (n_ends != n || n_out != n * m))
        ok = length_error("ends must be as long as starts, out spans x likely") == 0;
    for (Py_ssize_t j = 0; ok && j < m; j++)
        if (likely[j] < 0 || likely[j] >= n) ok = length_error("likely must index the spans") == 0;
    if (ok) {
        Py_BEGIN_ALLOW_THREADS;
        for (Py_ssize_t i = 0; i < n; i++) {
            double *row = out + i * m;
            for (Py_ssize_t j = 0; j < m; j++) {
                int64_t k = likely[j];
                int64_t low = starts[i] > starts[k] ? starts[i] : starts[k];
                int64_t high = ends[i] < ends[k] ? ends[i] : ends[k];
                int64_t overlap = high > low ? high - low : 0;
                /* As numpy divides two int64 arrays: both made double, then one division. */
                row[j] = (double)(2 * overlap) /
                         (double)((ends[i] - starts[i]) + (ends[k] - starts[k]));
            }
        }
        Py_END_ALLOW_THREADS;
    }
    release(&views);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* --- The reader's span columns (retrieval/reader.py `span_table`) ----------------------- */

/* Where each value goes, in the order of reader.py's `_SPAN_LAYOUT`: table columns, then the
 * constants the columns are worked out with. */
enum {
    L_FIT, L_ASKS_NONE, L_LEFT, L_RIGHT, L_BOTH, L_NEAR, L_LOG_DISTANCE, L_ANY_BOTH,
    L_FIT_NEAR, L_FIT_CONTEXT, L_NOUN_CONTEXT, L_IN_QUESTION, L_LOG_CHARS, L_SHARE,
    L_PUNCT_AFTER, L_PUNCT_BEFORE, L_START, L_END, L_OPEN_LENGTH, L_STARTS_RUN, L_ENDS_RUN,
    L_WHOLE_RUN, L_JOINS, L_EXPLAINS_JOINS, L_EXPLAINS_LENGTH, L_UNBALANCED,
    L_HOLE_LOGS, /* 6: the hole word, side words and bigrams before the span, then after */
    L_HOLE_CLOSE = L_HOLE_LOGS + 6, /* 6, the same rows */
    L_HOLE_BOTH = L_HOLE_CLOSE + 6, /* 3 */
    L_IN_HOLE = L_HOLE_BOTH + 3, L_FIT_HOLE, L_FIT_GRAM, L_NONE_GRAM,
    L_HEAD_TAIL, L_HEAD_MORE, L_HEAD_FIRST, L_GRAM_INSIDE, L_GRAM_SHARE,
    L_LENGTH, /* one column a length bin after the first */
    L_SEGMENTS = L_LENGTH + SPAN_LENGTH_BINS - 1, L_UNTAGGED,
    L_NAMES, /* 3: person, place, org */
    L_FLAG_COLUMNS = L_NAMES + 3, /* SPAN_FLAGS columns */
    L_FLAG_WHERE = L_FLAG_COLUMNS + SPAN_FLAGS, /* each one's segment: before, first, last, after */
    L_FLAG_BITS = L_FLAG_WHERE + SPAN_FLAGS, /* and its flag bit */
    L_NAME_BITS = L_FLAG_BITS + SPAN_FLAGS, /* 3 */
    L_TAGS_AT = L_NAME_BITS + 3, L_TAG_CLASSES, L_CLASS_SHIFT, L_IS_NOUN,
    L_TEXT_COLUMNS, /* SPAN_TEXT columns, where `text`'s go */
    L_LENGTH_BINS = L_TEXT_COLUMNS + SPAN_TEXT, /* SPAN_LENGTH_BINS lowest lengths */
    L_JOIN_CODES = L_LENGTH_BINS + SPAN_LENGTH_BINS, /* 4 code points that join clauses */
    L_PAIRS = L_JOIN_CODES + 4, /* SPAN_PAIRS opening and closing code points */
    L_FAR = L_PAIRS + 2 * SPAN_PAIRS, L_END_AT, L_ASKS_COLUMN, L_OPEN_QUESTION, L_EXPLAINS,
    L_SIZE
};

/* Runs of positions: set i is places[bounds[i]..bounds[i + 1] - 1]. */
enum { P_HOLE, P_GRAMS = P_HOLE + 6, P_SPOTS, P_SPOT_SIZES, P_SETS };

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Characters from each span edge back to the nearest mark at or before it (before), or on to
 * the nearest at or after it; at most `far` (reader.py `_gaps`). `nearest`: n + 1 scratch. */
static void edge_gaps(const int64_t *marks, int64_t n_marks, int64_t n, int before,
                      const int64_t *edges, int64_t m, int64_t far, int64_t *nearest,
                      int64_t *gaps) {
    int64_t none = before ? -2 * far - n : 2 * far + n;
    for (int64_t i = 0; i <= n; i++) nearest[i] = none;
    for (int64_t j = 0; j < n_marks; j++) nearest[marks[j]] = marks[j];
    if (before)
        for (int64_t i = 1; i <= n; i++) nearest[i] = max64(nearest[i], nearest[i - 1]);
    else
        for (int64_t i = n - 1; i >= 0; i--) nearest[i] = min64(nearest[i], nearest[i + 1]);
    for (int64_t r = 0; r < m; r++) {
        int64_t e = edges[r];
        gaps[r] = min64(before ? e - nearest[e] : nearest[e] - e, far);
    }
}

PyDoc_STRVAR(span_columns_doc,
             "span_columns(table, spans, in_question, text, segments, punct, settled, codes, "
             "places, bounds, tails, logs, layout)\n--\n\n"
             "Fills the span table's columns that need no span's own text (retrieval.reader "
             "`span_table` says what each holds and how it is called).");

static PyObject *span_columns(PyObject *module, PyObject *args) {
    PyObject *table_obj, *spans_obj, *inq_obj, *text_obj, *seg_obj, *punct_obj, *settled_obj;
    PyObject *codes_obj, *places_obj, *bounds_obj, *tails_obj, *logs_obj, *layout_obj;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOO:span_columns", &table_obj, &spans_obj, &inq_obj,
                          &text_obj, &seg_obj, &punct_obj, &settled_obj, &codes_obj, &places_obj,
                          &bounds_obj, &tails_obj, &logs_obj, &layout_obj))
        return NULL;
    Views views = {.n = 0};
    Py_ssize_t n_table, n_spans, n_inq, n_text, n_seg, n_punct, n_settled, n, n_places,
        n_bounds, n_tails, n_logs, n_layout;
    double *table = NULL;
    const int64_t *spans = NULL, *segs = NULL, *places = NULL, *bounds = NULL, *tails = NULL;
    const int64_t *L = NULL;
    const double *inq = NULL, *text = NULL, *logs = NULL;
    const uint8_t *punct = NULL, *settled = NULL;
    const uint32_t *codes = NULL;
    int ok = (table = view(&views, table_obj, "table", F64, 8, 1, &n_table)) &&
             (spans = view(&views, spans_obj, "spans", I64, 8, 0, &n_spans)) &&
             (inq = view(&views, inq_obj, "in_question", F64, 8, 0, &n_inq)) &&
             (text = view(&views, text_obj, "text", F64, 8, 0, &n_text)) &&
             (segs = view(&views, seg_obj, "segments", I64, 8, 0, &n_seg)) &&
             (punct = view(&views, punct_obj, "punct", BOOL, 1, 0, &n_punct)) &&
             (settled = view(&views, settled_obj, "settled", BOOL, 1, 0, &n_settled)) &&
             (codes = view(&views, codes_obj, "codes", U32, 4, 0, &n)) &&
             (places = view(&views, places_obj, "places", I64, 8, 0, &n_places)) &&
             (bounds = view(&views, bounds_obj, "bounds", I64, 8, 0, &n_bounds)) &&
             (tails = view(&views, tails_obj, "tails", I64, 8, 0, &n_tails)) &&
             (logs = view(&views, logs_obj, "logs", F64, 8, 0, &n_logs)) &&
             (L = view(&views, layout_obj, "layout", I64, 8, 0, &n_layout));
    int64_t m = n_inq, width = 0, far = 0;
    if (ok && n_layout != L_SIZE) ok = length_error("layout must hold every slot") == 0;
    if (ok) {
        far = L[L_FAR];
        width = m ? n_table / m : 0;
        if (n_spans != 4 * m || n_text != SPAN_TEXT * m || (m && n_table != width * m) ||
            n_seg < 1 || n_punct != n + 2 || n_settled != n + 2 || n_bounds != P_SETS + 1 ||
            n_tails != 2 * (n + 1) || far < 0 || n_logs <= (n > far ? n : far))
            ok = length_error("span_columns: the arrays' lengths do not fit the spans, the "
                              "sentence and the logs") == 0;
    }
    /* Every index the loops take is checked once here: a span within the sentence, its
     * segments within the segments (or -1 and -1), places within their sets and the
     * sentence, columns within the table. */
    for (int64_t i = 0; ok && i < m; i++) {
        int64_t s = spans[i], e = spans[m + i], f = spans[2 * m + i], l = spans[3 * m + i];
        if (!(0 <= s && s < e && e <= n) ||
            !((f == -1 && l == -1) || (0 <= f && f <= l && l < n_seg - 1)))
            ok = length_error("span_columns: a span lies outside the sentence") == 0;
    }
    for (int64_t i = 0; ok && i < P_SETS; i++)
        if (bounds[i] < 0 || bounds[i] > bounds[i + 1] || bounds[P_SETS] != n_places)
            ok = length_error("span_columns: bounds must run through places") == 0;
    if (ok && bounds[P_SPOT_SIZES + 1] - bounds[P_SPOT_SIZES] !=
                  bounds[P_SPOTS + 1] - bounds[P_SPOTS])
        ok = length_error("span_columns: every spot needs its size") == 0;
    for (int64_t j = 0; ok && j < bounds[P_SPOTS]; j++)
        if (places[j] < 0 || places[j] > n)
            ok = length_error("span_columns: a place lies outside the sentence") == 0;
    for (int64_t c = 0; ok && c < L_TAGS_AT; c++) {
        if (c >= L_FLAG_WHERE && c < L_TAGS_AT) continue;
        if (L[c] < 0 || L[c] >= width)
            ok = length_error("span_columns: a column lies outside the table") == 0;
    }
    if (ok && (L[L_TAGS_AT] < 0 || L[L_TAGS_AT] + 4 * L[L_TAG_CLASSES] > width ||
               L[L_IS_NOUN] < 0 || L[L_IS_NOUN] >= width || L[L_ASKS_COLUMN] >= width ||
               L[L_CLASS_SHIFT] < 0 || L[L_CLASS_SHIFT] > 62))
        ok = length_error("span_columns: a column lies outside the table") == 0;
    for (int64_t c = 0; ok && c < SPAN_TEXT; c++)
        if (L[L_TEXT_COLUMNS + c] < 0 || L[L_TEXT_COLUMNS + c] >= width)
            ok = length_error("span_columns: a column lies outside the table") == 0;
    for (int64_t c = 0; ok && c < SPAN_FLAGS; c++)
        if (L[L_FLAG_WHERE + c] < 0 || L[L_FLAG_WHERE + c] > 3 || L[L_FLAG_BITS + c] < 0 ||
            L[L_FLAG_BITS + c] > 62)
            ok = length_error("span_columns: a segment flag is out of range") == 0;
    for (int64_t k = 0; ok && k < 3; k++)
        if (L[L_NAME_BITS + k] < 0 || L[L_NAME_BITS + k] > 62)
            ok = length_error("span_columns: a segment flag is out of range") == 0;
    int64_t *scratch = NULL;
    if (ok) {
        /* running counts (n + 1 each): joins, the question's bigram starts, one pair's
         * openings and closings; the nearest marks; 6 gap rows of m */
        scratch = malloc((size_t)(5 * (n + 1) + 6 * m + 1) * sizeof(int64_t));
        if (scratch == NULL) {
            PyErr_NoMemory();
            ok = 0;
        }
    }
    if (ok) {
        const int64_t *starts = spans, *ends = spans + m, *first = spans + 2 * m,
                      *last = spans + 3 * m;
        int64_t *joins = scratch, *grams = joins + (n + 1), *opens = grams + (n + 1),
                *closes = opens + (n + 1), *nearest = closes + (n + 1), *gaps = nearest + (n + 1);
        int64_t n_seg_real = n_seg - 1; /* the last entry stands for "no segment" */
        Py_BEGIN_ALLOW_THREADS;
        /* Segments (reader.py `_write_segments`): what a span's segments and their
         * neighbours' tags and words say. */
        int64_t shift = L[L_CLASS_SHIFT], classes = L[L_TAG_CLASSES];
        for (int64_t i = 0; i < m; i++) {
            double *row = table + i * width;
            int64_t f = first[i], l = last[i], tagged = f >= 0;
            int64_t size = tagged ? l - f + 1 : 0;
            for (int64_t k = 0; k < 3; k++) {
                int64_t all = tagged;
                for (int64_t g = f; tagged && g <= l && all; g++)
                    all = (segs[g] >> L[L_NAME_BITS + k]) & 1;
                row[L[L_NAMES + k]] = (double)all;
            }
            int64_t around[4] = {tagged ? f - 1 : -1, f, l, tagged ? l + 1 : -1};
            for (int64_t p = 0; p < 4; p++)
                around[p] = around[p] < 0 || around[p] >= n_seg_real ? 0 : segs[around[p]];
            for (int64_t c = 0; c < SPAN_FLAGS; c++)
                row[L[L_FLAG_COLUMNS + c]] =
                    (double)((around[L[L_FLAG_WHERE + c]] >> L[L_FLAG_BITS + c]) & 1);
            row[L[L_SEGMENTS]] = (double)size;
            row[L[L_UNTAGGED]] = (double)!tagged;
            for (int64_t p = 0; p < 4; p++) {
                int64_t c = around[p] >> shift;
                if (c > 0 && c <= classes) row[L[L_TAGS_AT] + p * classes + c - 1] = 1.0;
            }
        }
        /* Per-character runs: clause joins, the question's bigrams' starts. */
        joins[0] = 0;
        for (int64_t j = 0; j < n; j++) {
            uint32_t c = codes[j];
            int join = c == (uint32_t)L[L_JOIN_CODES] || c == (uint32_t)L[L_JOIN_CODES + 1] ||
                       c == (uint32_t)L[L_JOIN_CODES + 2] || c == (uint32_t)L[L_JOIN_CODES + 3];
            joins[j + 1] = joins[j] + join;
        }
        for (int64_t j = 0; j < n; j++) grams[j] = 0;
        for (int64_t j = bounds[P_GRAMS]; j < bounds[P_GRAMS + 1]; j++)
            if (places[j] < n) grams[places[j]] = 1;
        for (int64_t j = 0, run = 0; j <= n; j++) {
            int64_t flag = j < n ? grams[j] : 0;
            grams[j] = run;
            run += flag;
        }
        /* Hole gaps (reader.py `_write_hole`): rows 0-2 before the span, 3-5 after it. */
        for (int64_t r = 0; r < 6; r++)
            edge_gaps(places + bounds[P_HOLE + r], bounds[P_HOLE + r + 1] - bounds[P_HOLE + r],
                      n, r < 3, r < 3 ? starts : ends, m, far, nearest, gaps + r * m);
        const int64_t *spot = places + bounds[P_SPOTS], *spot_size = places + bounds[P_SPOT_SIZES];
        int64_t n_spots = bounds[P_SPOTS + 1] - bounds[P_SPOTS];
        double open = (double)L[L_OPEN_QUESTION], explains = (double)L[L_EXPLAINS];
        for (int64_t i = 0; i < m; i++) {
            double *row = table + i * width;
            const double *t = text + i * SPAN_TEXT;
            int64_t s = starts[i], e = ends[i], size = e - s;
            for (int64_t c = 0; c < SPAN_TEXT; c++) row[L[L_TEXT_COLUMNS + c]] = t[c];
            double fit = L[L_ASKS_COLUMN] >= 0 ? row[L[L_ASKS_COLUMN]] : 0.0;
            int64_t distance = n;
            for (int64_t j = 0; j < n_spots; j++) {
                int64_t p = spot[j], end = p + spot_size[j];
                if (p >= e || end <= s) {
                    int64_t a = p - e < 0 ? e - p : p - e, b = s - end < 0 ? end - s : s - end;
                    distance = min64(distance, min64(a, b));
                }
            }
            double left = t[SPAN_LEFT], left_any = t[SPAN_LEFT + 1];
            double right = t[SPAN_LEFT + 2], right_any = t[SPAN_LEFT + 3];
            double any_side = left_any + right_any, log_chars = logs[size];
            double join_log = logs[joins[e] - joins[s]];
            int near = distance <= 1;
            int settled_before = settled[s], settled_after = settled[e + 1];
            row[L[L_FIT]] = fit;
            row[L[L_ASKS_NONE]] = open;
            row[L[L_LEFT]] = left / 6;
            row[L[L_RIGHT]] = right / 6;
            row[L[L_BOTH]] = (double)(left > 0 && right > 0);
            row[L[L_NEAR]] = (double)near;
            row[L[L_LOG_DISTANCE]] = logs[distance];
            row[L[L_ANY_BOTH]] = left_any * right_any;
            row[L[L_FIT_NEAR]] = (double)(fit > 0 && near);
            row[L[L_FIT_CONTEXT]] = fit * any_side;
            row[L[L_NOUN_CONTEXT]] = row[L[L_IS_NOUN]] * any_side;
            row[L[L_IN_QUESTION]] = inq[i];
            row[L[L_LOG_CHARS]] = log_chars;
            row[L[L_SHARE]] = (double)size / (double)(n > 1 ? n : 1);
            row[L[L_PUNCT_AFTER]] = (double)punct[e + 1];
            row[L[L_PUNCT_BEFORE]] = (double)punct[s];
            row[L[L_START]] = (double)(s == 0);
            row[L[L_END]] = (double)(e >= L[L_END_AT]);
            row[L[L_OPEN_LENGTH]] = open * log_chars;
            row[L[L_STARTS_RUN]] = (double)settled_before;
            row[L[L_ENDS_RUN]] = (double)settled_after;
            row[L[L_WHOLE_RUN]] = (double)(settled_before && settled_after);
            /* the hole */
            int close[6];
            for (int64_t r = 0; r < 6; r++) {
                int64_t gap = gaps[r * m + i];
                close[r] = gap <= 1;
                row[L[L_HOLE_LOGS + r]] = logs[gap];
                row[L[L_HOLE_CLOSE + r]] = (double)close[r];
            }
            for (int64_t r = 0; r < 3; r++)
                row[L[L_HOLE_BOTH + r]] = (double)(close[r] && close[r + 3]);
            row[L[L_IN_HOLE]] = (double)(gaps[i] < far && gaps[3 * m + i] < far);
            row[L[L_FIT_HOLE]] = fit * (double)(close[0] || close[3]);
            row[L[L_FIT_GRAM]] = fit * (double)(close[2] || close[5]);
            row[L[L_NONE_GRAM]] = open * (double)(close[2] || close[5]);
            row[L[L_JOINS]] = join_log;
            row[L[L_EXPLAINS_JOINS]] = explains * join_log;
            row[L[L_EXPLAINS_LENGTH]] = explains * log_chars;
            /* the head (reader.py `_write_head`) */
            int64_t tail = min64(tails[2 * e], size), named = min64(tails[2 * e + 1], size);
            int64_t inside = grams[max64(e - 1, s)] - grams[s];
            row[L[L_HEAD_TAIL]] = (double)tail / 4;
            row[L[L_HEAD_MORE]] = (double)(tail > 0 && size > tail);
            row[L[L_HEAD_FIRST]] = (double)(named > 0 && size > named);
            row[L[L_GRAM_INSIDE]] = (double)(inside > 0);
            row[L[L_GRAM_SHARE]] = (double)inside / (double)(size - 1 > 1 ? size - 1 : 1);
            /* the length's bin: the last lowest length at or below it */
            int64_t bin = -1;
            for (int64_t b = 0; b < SPAN_LENGTH_BINS; b++)
                if (L[L_LENGTH_BINS + b] <= size) bin = b;
            for (int64_t b = 1; b < SPAN_LENGTH_BINS; b++)
                row[L[L_LENGTH + b - 1]] = (double)(bin == b);
            row[L[L_UNBALANCED]] = 0.0;
        }
        /* Brackets and quotes a span cuts (reader.py `_unbalanced`). */
        for (int64_t p = 0; p < SPAN_PAIRS; p++) {
            uint32_t opening = (uint32_t)L[L_PAIRS + 2 * p], closing = (uint32_t)L[L_PAIRS + 2 * p + 1];
            opens[0] = closes[0] = 0;
            for (int64_t j = 0; j < n; j++) {
                opens[j + 1] = opens[j] + (codes[j] == opening);
                closes[j + 1] = closes[j] + (codes[j] == closing);
            }
            if (opens[n] == 0 && closes[n] == 0) continue;
            for (int64_t i = 0; i < m; i++) {
                int64_t s = starts[i], e = ends[i];
                int64_t o = opens[e] - opens[s], c = closes[e] - closes[s];
                int odd = opening == closing ? o % 2 == 1 : o != c;
                if (odd) table[i * width + L[L_UNBALANCED]] = 1.0;
            }
        }
        Py_END_ALLOW_THREADS;
    }
    free(scratch);
    release(&views);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"top_k", top_k, METH_VARARGS, top_k_doc},
    {"top_k_blocks", top_k_blocks, METH_VARARGS, top_k_blocks_doc},
    {"scores_of", scores_of, METH_VARARGS, scores_of_doc},
    {"drop_pages", drop_pages, METH_VARARGS, drop_pages_doc},
    {"block_bound", block_bound_py, METH_VARARGS, block_bound_doc},
    {"forest_sums", forest_sums, METH_VARARGS, forest_sums_doc},
    {"span_f1", span_f1, METH_VARARGS, span_f1_doc},
    {"span_columns", span_columns, METH_VARARGS, span_columns_doc},
    {"held_sums", held_sums, METH_VARARGS, held_sums_doc},
    {"span_runs", span_runs, METH_VARARGS, span_runs_doc},
    {"edge_sides", edge_sides, METH_VARARGS, edge_sides_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "retrieval._kernels",
    .m_doc = "BM25 top-k and tree kernels in C; the documented interface is retrieval.kernels.",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModuleDef_Init(&module); }
