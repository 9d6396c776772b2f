/* kubemr._native: the map and shuffle path's hot loops in C.
 *
 * Every function here has a pure-Python reference that stays the tested definition
 * (kubemr.partitioning, kubemr.records, kubemr.runs, kubemr.mapbuffer,
 * kubemr.combinetable); property tests (tests/unit/test_native.py) check that both give
 * the same result on random inputs, and kubemr.native chooses between them
 * (KUBEMR_NATIVE=0 forces the pure path). What this module does not handle itself it
 * hands back to the Python callables it is given, so results never differ.
 *
 * - partition / partitions: crc32(key, or a tuple key's first element) mod R, or the
 *   range partitioner's bisect_right over sorted boundaries.
 * - combine_fill: CombineTable.add's loop: values gathered per key as they arrive.
 * - values_cost: the combining map's memory estimate of a key's values.
 * - encode_key / encode_value / decode_value: records' encodings of common types.
 * - sort_records: a list of records sorted by key in place, stably.
 * - SortBuffer: the sort buffer without a combiner (MapBuffer.add's loop): records
 *   encoded, partitioned and appended to one arena until the buffer is full, sorted and
 *   framed natively.
 * - Merger: the k-way merge of sorted runs (a heap of the runs' current records).
 * - Grouper: the reducer's loop (reducetask.run_reduce): keys grouped, decoded, reduced.
 * - records_size / frame / decode_batch: the run frame codec (a 4-byte little-endian
 *   length and a RecordBatch protobuf: every key as field 1, then every value as
 *   field 2, each a length-delimited bytes field).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define STR_TAG 0x05
#define BYTES_TAG 0x06
#define TUPLE_TAG 0x07

/* ---- crc32 (zlib's: reflected 0xEDB88320, initial and final xor 0xFFFFFFFF) ---- */

static uint32_t crc_table[8][256];

static void
crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

static uint32_t
crc32_of(const unsigned char *p, Py_ssize_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    while (n >= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
            crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^
            crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        c = crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* ---- partitioning ---- */

/* A partitioner: hash (reduce_tasks > 0) or range (boundaries). */
typedef struct {
    long reduce_tasks;
    Py_ssize_t count;
    const char **bounds;
    Py_ssize_t *lengths;
} Spec;

static void
spec_release(Spec *spec)
{
    PyMem_Free(spec->bounds);
    PyMem_Free(spec->lengths);
    spec->bounds = NULL;
    spec->lengths = NULL;
}

/* ``spec``: an int (the hash partitioner's R) or a list of bytes (range boundaries).
 * The list must stay alive while the Spec is used. */
static int
spec_parse(PyObject *obj, Spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    if (PyLong_Check(obj)) {
        spec->reduce_tasks = PyLong_AsLong(obj);
        if (spec->reduce_tasks == -1 && PyErr_Occurred())
            return -1;
        if (spec->reduce_tasks < 1) {
            PyErr_SetString(PyExc_ValueError, "reduce_tasks must be at least 1");
            return -1;
        }
        return 0;
    }
    if (!PyList_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "partition spec must be an int or a list of bytes");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(obj);
    spec->count = n;
    spec->bounds = PyMem_Malloc(sizeof(char *) * (size_t)(n ? n : 1));
    spec->lengths = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
    if (spec->bounds == NULL || spec->lengths == NULL) {
        spec_release(spec);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = PyList_GET_ITEM(obj, i);
        if (!PyBytes_Check(b)) {
            spec_release(spec);
            PyErr_SetString(PyExc_TypeError, "range boundaries must be bytes");
            return -1;
        }
        spec->bounds[i] = PyBytes_AS_STRING(b);
        spec->lengths[i] = PyBytes_GET_SIZE(b);
    }
    return 0;
}

static int
bytes_compare(const char *a, Py_ssize_t alen, const char *b, Py_ssize_t blen)
{
    int c = memcmp(a, b, (size_t)(alen < blen ? alen : blen));
    if (c)
        return c;
    return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

static long
spec_partition(const Spec *spec, const char *key, Py_ssize_t n)
{
    if (spec->reduce_tasks > 0) {
        if (spec->reduce_tasks == 1)
            return 0;
        Py_ssize_t len = n;
        if (n > 0 && (unsigned char)key[0] == TUPLE_TAG) {
            for (Py_ssize_t i = 1; i + 1 < n; i++) {
                if (key[i] == 0 && key[i + 1] == 1) {
                    len = i + 2;
                    break;
                }
            }
        }
        return (long)(crc32_of((const unsigned char *)key, len) % (uint32_t)spec->reduce_tasks);
    }
    /* bisect_right: the number of boundaries <= key */
    Py_ssize_t lo = 0, hi = spec->count;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (bytes_compare(key, n, spec->bounds[mid], spec->lengths[mid]) < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return (long)lo;
}

static PyObject *
native_partition(PyObject *self, PyObject *args)
{
    Py_buffer key;
    PyObject *spec_obj;
    Spec spec;
    if (!PyArg_ParseTuple(args, "y*O", &key, &spec_obj))
        return NULL;
    if (spec_parse(spec_obj, &spec) < 0) {
        PyBuffer_Release(&key);
        return NULL;
    }
    long p = spec_partition(&spec, key.buf, key.len);
    spec_release(&spec);
    PyBuffer_Release(&key);
    return PyLong_FromLong(p);
}

static PyObject *
native_partitions(PyObject *self, PyObject *args)
{
    PyObject *keys, *spec_obj;
    Spec spec;
    if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &keys, &spec_obj))
        return NULL;
    if (spec_parse(spec_obj, &spec) < 0)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(keys);
    PyObject *out = PyList_New(n);
    if (out == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k = PyList_GET_ITEM(keys, i);
        if (!PyBytes_Check(k)) {
            PyErr_SetString(PyExc_TypeError, "encoded keys must be bytes");
            goto fail;
        }
        PyObject *p = PyLong_FromLong(spec_partition(&spec, PyBytes_AS_STRING(k), PyBytes_GET_SIZE(k)));
        if (p == NULL)
            goto fail;
        PyList_SET_ITEM(out, i, p);
    }
    spec_release(&spec);
    return out;
fail:
    Py_XDECREF(out);
    spec_release(&spec);
    return NULL;
}

/* ---- encoding keys and values ---- */

/* The UTF-8 (surrogatepass) of a str: its own data when ASCII, else in ``*encoded`` (a new
 * reference the caller releases; NULL when not needed). */
static int
utf8_of(PyObject *s, const char **data, Py_ssize_t *n, PyObject **encoded)
{
    *encoded = NULL;
    if (PyUnicode_IS_ASCII(s)) {
        *data = (const char *)PyUnicode_DATA(s);
        *n = PyUnicode_GET_LENGTH(s);
        return 0;
    }
    *encoded = PyUnicode_AsEncodedString(s, "utf-8", "surrogatepass");
    if (*encoded == NULL)
        return -1;
    *data = PyBytes_AS_STRING(*encoded);
    *n = PyBytes_GET_SIZE(*encoded);
    return 0;
}

/* ``tag`` + the UTF-8 (surrogatepass) of a str; NULL with an exception on failure. */
static PyObject *
tagged_str(unsigned char tag, PyObject *s)
{
    const char *data;
    Py_ssize_t n;
    PyObject *encoded;
    if (utf8_of(s, &data, &n, &encoded) < 0)
        return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n + 1);
    if (out != NULL) {
        char *p = PyBytes_AS_STRING(out);
        p[0] = (char)tag;
        memcpy(p + 1, data, (size_t)n);
    }
    Py_XDECREF(encoded);
    return out;
}

/* The encoded key (records.encode_key) of str and bytes keys; others through Python. */
static PyObject *
encode_key(PyObject *key, PyObject *fallback)
{
    if (PyUnicode_CheckExact(key))
        return tagged_str(STR_TAG, key);
    if (PyBytes_CheckExact(key)) {
        Py_ssize_t n = PyBytes_GET_SIZE(key);
        PyObject *out = PyBytes_FromStringAndSize(NULL, n + 1);
        if (out != NULL) {
            PyBytes_AS_STRING(out)[0] = (char)BYTES_TAG;
            memcpy(PyBytes_AS_STRING(out) + 1, PyBytes_AS_STRING(key), (size_t)n);
        }
        return out;
    }
    return PyObject_CallOneArg(fallback, key);
}

static int
put_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xFF);
        v >>= 8;
    }
    return bytes;
}

/* msgpack of an int that fits a long long (msgpack-python's smallest encoding). */
static PyObject *
msgpack_int(long long x)
{
    unsigned char buf[9];
    Py_ssize_t n;
    if (x < -(1LL << 5)) {
        if (x < -(1LL << 15)) {
            if (x < -(1LL << 31)) {
                buf[0] = 0xd3;
                n = 1 + put_be(buf + 1, (uint64_t)x, 8);
            } else {
                buf[0] = 0xd2;
                n = 1 + put_be(buf + 1, (uint64_t)x, 4);
            }
        } else if (x < -(1LL << 7)) {
            buf[0] = 0xd1;
            n = 1 + put_be(buf + 1, (uint64_t)x, 2);
        } else {
            buf[0] = 0xd0;
            n = 1 + put_be(buf + 1, (uint64_t)x, 1);
        }
    } else if (x < (1LL << 7)) {
        buf[0] = (unsigned char)(x & 0xFF);
        n = 1;
    } else if (x < (1LL << 16)) {
        if (x < (1LL << 8)) {
            buf[0] = 0xcc;
            n = 1 + put_be(buf + 1, (uint64_t)x, 1);
        } else {
            buf[0] = 0xcd;
            n = 1 + put_be(buf + 1, (uint64_t)x, 2);
        }
    } else if (x < (1LL << 32)) {
        buf[0] = 0xce;
        n = 1 + put_be(buf + 1, (uint64_t)x, 4);
    } else {
        buf[0] = 0xcf;
        n = 1 + put_be(buf + 1, (uint64_t)x, 8);
    }
    return PyBytes_FromStringAndSize((const char *)buf, n);
}

/* msgpack of a str (use_bin_type: str8 exists), UTF-8 with surrogatepass. */
static PyObject *
msgpack_str(PyObject *s)
{
    const char *data;
    Py_ssize_t n;
    PyObject *encoded;
    if (utf8_of(s, &data, &n, &encoded) < 0)
        return NULL;
    if ((uint64_t)n > 0xFFFFFFFFull) {
        Py_XDECREF(encoded);
        return NULL; /* caller falls back (never: no str is that long here) */
    }
    unsigned char head[5];
    int h;
    if (n < 32) {
        head[0] = (unsigned char)(0xa0 | n);
        h = 1;
    } else if (n < 256) {
        head[0] = 0xd9;
        h = 1 + put_be(head + 1, (uint64_t)n, 1);
    } else if (n < 65536) {
        head[0] = 0xda;
        h = 1 + put_be(head + 1, (uint64_t)n, 2);
    } else {
        head[0] = 0xdb;
        h = 1 + put_be(head + 1, (uint64_t)n, 4);
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, h + n);
    if (out != NULL) {
        memcpy(PyBytes_AS_STRING(out), head, (size_t)h);
        memcpy(PyBytes_AS_STRING(out) + h, data, (size_t)n);
    }
    Py_XDECREF(encoded);
    return out;
}

/* The encoded value (records.encode_value): None, int, str here; others through Python. */
static PyObject *
encode_value(PyObject *value, PyObject *fallback, PyObject *none_value)
{
    if (value == Py_None) {
        Py_INCREF(none_value);
        return none_value;
    }
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow && !(x == -1 && PyErr_Occurred()))
            return msgpack_int(x);
        PyErr_Clear();
    } else if (PyUnicode_CheckExact(value)) {
        PyObject *out = msgpack_str(value);
        if (out != NULL)
            return out;
        PyErr_Clear();
    }
    return PyObject_CallOneArg(fallback, value);
}

/* The exported encoders and decoders take their fallback first, so that
 * functools.partial(function, fallback, ...) is a one-argument encoder or decoder. */

static PyObject *
native_encode_key(PyObject *self, PyObject *args)
{
    PyObject *key, *fallback;
    if (!PyArg_ParseTuple(args, "OO", &fallback, &key))
        return NULL;
    return encode_key(key, fallback);
}

static PyObject *
native_encode_value(PyObject *self, PyObject *args)
{
    PyObject *value, *fallback, *none_value;
    if (!PyArg_ParseTuple(args, "OOO", &fallback, &none_value, &value))
        return NULL;
    return encode_value(value, fallback, none_value);
}

static uint64_t
get_be(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The value a complete msgpack encoding of nil, a bool, an int, a float, a str or a bin
 * stands for (records.decode_value); NULL without an exception for anything else. */
static PyObject *
msgpack_scalar(const unsigned char *p, Py_ssize_t n)
{
    if (n < 1)
        return NULL;
    unsigned char head = p[0];
    Py_ssize_t body = 0, length = -1;
    int kind = 0; /* 1 str, 2 bin */
    if (head <= 0x7f)
        return n == 1 ? PyLong_FromLong(head) : NULL;
    if (head >= 0xe0)
        return n == 1 ? PyLong_FromLong((long)(signed char)head) : NULL;
    if ((head & 0xe0) == 0xa0) {
        kind = 1;
        body = 1;
        length = head & 0x1f;
    } else {
        switch (head) {
        case 0xc0:
            if (n != 1)
                return NULL;
            Py_RETURN_NONE;
        case 0xc2:
        case 0xc3:
            if (n != 1)
                return NULL;
            return PyBool_FromLong(head == 0xc3);
        case 0xcc: case 0xcd: case 0xce: case 0xcf: {
            int bytes = 1 << (head - 0xcc);
            if (n != 1 + bytes)
                return NULL;
            return PyLong_FromUnsignedLongLong(get_be(p + 1, bytes));
        }
        case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
            int bytes = 1 << (head - 0xd0);
            if (n != 1 + bytes)
                return NULL;
            uint64_t v = get_be(p + 1, bytes);
            int shift = 64 - 8 * bytes;
            long long x = shift ? (long long)(v << shift) >> shift : (long long)v;
            return PyLong_FromLongLong(x);
        }
        case 0xca: {
            if (n != 5)
                return NULL;
            uint32_t bits = (uint32_t)get_be(p + 1, 4);
            float f;
            memcpy(&f, &bits, 4);
            return PyFloat_FromDouble((double)f);
        }
        case 0xcb: {
            if (n != 9)
                return NULL;
            uint64_t bits = get_be(p + 1, 8);
            double d;
            memcpy(&d, &bits, 8);
            return PyFloat_FromDouble(d);
        }
        case 0xd9: case 0xda: case 0xdb:
            kind = 1;
            body = 1 + (1 << (head - 0xd9));
            break;
        case 0xc4: case 0xc5: case 0xc6:
            kind = 2;
            body = 1 + (1 << (head - 0xc4));
            break;
        default:
            return NULL;
        }
        if (n < body)
            return NULL;
        length = (Py_ssize_t)get_be(p + 1, (int)body - 1);
    }
    if (n != body + length)
        return NULL;
    if (kind == 2)
        return PyBytes_FromStringAndSize((const char *)p + body, length);
    PyObject *s = PyUnicode_DecodeUTF8((const char *)p + body, length, "surrogatepass");
    if (s == NULL)
        PyErr_Clear(); /* the fallback raises msgpack's own error */
    return s;
}

static PyObject *
native_decode_value(PyObject *self, PyObject *args)
{
    PyObject *fallback, *data;
    if (!PyArg_ParseTuple(args, "OO", &fallback, &data))
        return NULL;
    if (PyBytes_Check(data)) {
        PyObject *value = msgpack_scalar((const unsigned char *)PyBytes_AS_STRING(data),
                                         PyBytes_GET_SIZE(data));
        if (value != NULL || PyErr_Occurred())
            return value;
    }
    return PyObject_CallOneArg(fallback, data);
}

/* ``for key, value in pairs``: borrowed-style unpacking into new references. */
static int
unpack_pair(PyObject *item, PyObject **key, PyObject **value)
{
    if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2) {
        *key = PyTuple_GET_ITEM(item, 0);
        *value = PyTuple_GET_ITEM(item, 1);
        Py_INCREF(*key);
        Py_INCREF(*value);
        return 0;
    }
    PyObject *seq = PySequence_Tuple(item);
    if (seq == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError, "cannot unpack non-iterable %.200s object",
                         Py_TYPE(item)->tp_name);
        }
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    if (n != 2) {
        if (n > 2)
            PyErr_SetString(PyExc_ValueError, "too many values to unpack (expected 2)");
        else
            PyErr_Format(PyExc_ValueError, "not enough values to unpack (expected 2, got %zd)", n);
        Py_DECREF(seq);
        return -1;
    }
    *key = PyTuple_GET_ITEM(seq, 0);
    *value = PyTuple_GET_ITEM(seq, 1);
    Py_INCREF(*key);
    Py_INCREF(*value);
    Py_DECREF(seq);
    return 0;
}

/* The next pair of the iterator ``pairs`` as new references: 1, or 0 when it is
 * exhausted, or -1 with an exception. */
static int
next_pair(PyObject *pairs, PyObject **key, PyObject **value)
{
    PyObject *item = PyIter_Next(pairs);
    if (item == NULL)
        return PyErr_Occurred() ? -1 : 0;
    int bad = unpack_pair(item, key, value);
    Py_DECREF(item);
    return bad ? -1 : 1;
}

/* ---- sizes ---- */

/* The ``__sizeof__`` method descriptors of str, bytes and int (set at import). */
static PyObject *str_sizeof, *bytes_sizeof, *int_sizeof;

/* sys.getsizeof(obj) as a C number, or -1 with an exception. ``fallback`` is
 * sys.getsizeof itself, called for every type but exact str, bytes and int: those the
 * garbage collector does not track, so their size is their type's __sizeof__, called
 * here without the keyword parsing and the bound method sys.getsizeof costs per call. */
static long long
object_size(PyObject *obj, PyObject *fallback)
{
    PyObject *method = NULL;
    if (PyUnicode_CheckExact(obj))
        method = str_sizeof;
    else if (PyBytes_CheckExact(obj))
        method = bytes_sizeof;
    else if (PyLong_CheckExact(obj))
        method = int_sizeof;
    PyObject *r = method != NULL ? PyObject_Vectorcall(method, &obj, 1, NULL)
                                 : PyObject_CallOneArg(fallback, obj);
    if (r == NULL)
        return -1;
    long long size = PyLong_AsLongLong(r);
    Py_DECREF(r);
    return size;
}

/* *cost = costs.get(type(value), -1) (the table's fixed cost by type; 0: measured; -1:
 * not a type held as it is). 0, or -1 with an exception. */
static int
type_cost(PyObject *costs, PyObject *value, long long *cost)
{
    PyObject *cost_obj = PyDict_GetItemWithError(costs, (PyObject *)Py_TYPE(value));
    if (cost_obj == NULL) {
        *cost = -1;
        return PyErr_Occurred() ? -1 : 0;
    }
    *cost = PyLong_AsLongLong(cost_obj);
    return (*cost == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* object_size(value) plus a list slot: the cost of a value measured; -1 on error. */
static long long
measured_cost(PyObject *value, PyObject *fallback, long long overhead)
{
    long long size = object_size(value, fallback);
    return (size == -1 && PyErr_Occurred()) ? -1 : size + overhead;
}

/* values_cost(values, costs, sizeof, value_overhead) -> int: combinetable._cost, the
 * estimated bytes of a key's held values: each value's cost by type (``costs``; 0 or
 * absent: object_size plus ``value_overhead``), or ``value_overhead`` alone when it is
 * the same object as the value before it. */
static PyObject *
native_values_cost(PyObject *self, PyObject *args)
{
    PyObject *values, *costs, *fallback;
    long long overhead;
    if (!PyArg_ParseTuple(args, "O!O!OL", &PyList_Type, &values, &PyDict_Type, &costs,
                          &fallback, &overhead))
        return NULL;
    long long total = 0;
    PyObject *previous = NULL; /* borrowed: the list holds it */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(values); i++) {
        PyObject *value = PyList_GET_ITEM(values, i);
        if (value == previous) {
            total += overhead;
            continue;
        }
        previous = value;
        long long cost;
        if (type_cost(costs, value, &cost) < 0)
            return NULL;
        if (cost <= 0 && (cost = measured_cost(value, fallback, overhead)) == -1)
            return NULL;
        total += cost;
    }
    return PyLong_FromLongLong(total);
}

static int
sizes_init(void)
{
    str_sizeof = PyObject_GetAttrString((PyObject *)&PyUnicode_Type, "__sizeof__");
    bytes_sizeof = PyObject_GetAttrString((PyObject *)&PyBytes_Type, "__sizeof__");
    int_sizeof = PyObject_GetAttrString((PyObject *)&PyLong_Type, "__sizeof__");
    return (str_sizeof && bytes_sizeof && int_sizeof) ? 0 : -1;
}

/* ---- the combining hash map's loop ---- */

/* combine_fill(pairs, strs, ints, bytes, encoded, fold_at, costs, sizeof, encode_key,
 *              encode_value, packed, due, fold, value_overhead, key_overhead, fold_count,
 *              size, capacity, limit, owner) -> (size, count, more)
 *
 * CombineTable.add's loop over the iterator ``pairs`` into the CombineTable ``owner``'s
 * dicts (its ``packed`` attribute is set when a value is first held encoded). Stops
 * when ``size`` reaches ``capacity``,
 * after ``limit`` records, or when ``pairs`` is exhausted (more = False). Keys of
 * exact type str, int and bytes are held as they are, every other key by its encoded
 * bytes (``encode_key``); values are held as they are when their type is in ``costs``
 * (cost 0: measured with ``sizeof``), else as ``packed(encode_value(value))``. When a
 * key's list reaches ``fold_at_count`` values and ``table._due`` agrees (or no fold
 * is pending anywhere), ``table._fold`` combines it. */
typedef struct {
    PyObject *strs, *ints, *bytes_, *encoded, *fold_at, *costs;
    PyObject *sizeof_, *encode_key, *encode_value, *packed_type, *due, *fold;
    long long value_overhead, key_overhead;
    Py_ssize_t fold_count;
} Combine;

static PyObject *
native_combine_fill(PyObject *self, PyObject *args)
{
    PyObject *pairs, *owner;
    Combine c;
    long long size, capacity;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "OO!O!O!O!O!O!OOOOOOLLnLLnO", &pairs, &PyDict_Type, &c.strs,
                          &PyDict_Type, &c.ints, &PyDict_Type, &c.bytes_, &PyDict_Type,
                          &c.encoded, &PyDict_Type, &c.fold_at, &PyDict_Type, &c.costs,
                          &c.sizeof_, &c.encode_key, &c.encode_value, &c.packed_type, &c.due,
                          &c.fold, &c.value_overhead, &c.key_overhead, &c.fold_count, &size,
                          &capacity, &limit, &owner))
        return NULL;
    PyObject *flag = PyObject_GetAttrString(owner, "packed");
    if (flag == NULL)
        return NULL;
    int packed = PyObject_IsTrue(flag);
    Py_DECREF(flag);
    if (packed < 0)
        return NULL;
    if (!PyIter_Check(pairs)) {
        PyErr_SetString(PyExc_TypeError, "pairs must be an iterator");
        return NULL;
    }
    Py_ssize_t count = 0;
    int more = 1;
    PyObject *last_value = NULL; /* the last value measured, and its cost */
    long long last_cost = 0;
    while (count < limit) {
        PyObject *key, *value;
        int got = next_pair(pairs, &key, &value);
        if (got < 0)
            goto fail;
        if (got == 0) {
            more = 0;
            break;
        }
        PyObject *table;
        if (PyUnicode_CheckExact(key))
            table = c.strs;
        else if (PyLong_CheckExact(key))
            table = c.ints;
        else if (PyBytes_CheckExact(key))
            table = c.bytes_;
        else {
            PyObject *kb = PyObject_CallOneArg(c.encode_key, key);
            Py_DECREF(key);
            if (kb == NULL) {
                Py_DECREF(value);
                goto fail;
            }
            key = kb;
            table = c.encoded;
        }
        /* cost = costs.get(type(value), -1), measured (sizeof) when 0; a value held as it
         * is that is the same object as the last one (the int 1 of a count, the path an
         * index yields for every word) costs what it cost then. */
        long long cost = -1;
        if (value == last_value)
            cost = last_cost;
        else {
            if (type_cost(c.costs, value, &cost) < 0)
                goto fail_kv;
            if (cost < 0) { /* not a scalar: held encoded, measured, never reused */
                PyObject *enc = PyObject_CallOneArg(c.encode_value, value);
                if (enc == NULL)
                    goto fail_kv;
                PyObject *held = PyObject_CallOneArg(c.packed_type, enc);
                Py_DECREF(enc);
                if (held == NULL)
                    goto fail_kv;
                Py_DECREF(value);
                value = held;
                if (!packed) { /* before any fold: the combiner must decode held values */
                    if (PyObject_SetAttrString(owner, "packed", Py_True) < 0)
                        goto fail_kv;
                    packed = 1;
                }
                if ((cost = measured_cost(value, c.sizeof_, c.value_overhead)) == -1)
                    goto fail_kv;
            } else {
                if (cost == 0 && (cost = measured_cost(value, c.sizeof_, c.value_overhead)) == -1)
                    goto fail_kv;
                Py_INCREF(value);
                Py_XSETREF(last_value, value);
                last_cost = cost;
            }
        }
        PyObject *values = PyDict_GetItemWithError(table, key); /* borrowed */
        if (values == NULL) {
            if (PyErr_Occurred())
                goto fail_kv;
            PyObject *list = PyList_New(1);
            if (list == NULL)
                goto fail_kv;
            Py_INCREF(value);
            PyList_SET_ITEM(list, 0, value);
            int set = PyDict_SetItem(table, key, list);
            Py_DECREF(list);
            if (set < 0)
                goto fail_kv;
            long long key_size = object_size(key, c.sizeof_);
            if (key_size == -1 && PyErr_Occurred())
                goto fail_kv;
            size += key_size + cost + c.key_overhead;
        } else {
            /* the same object as the value before it: held once, only its slot costs */
            Py_ssize_t held = PyList_GET_SIZE(values); /* 0 after a fold that kept none */
            size += held > 0 && PyList_GET_ITEM(values, held - 1) == value ? c.value_overhead
                                                                            : cost;
            if (PyList_Append(values, value) < 0)
                goto fail_kv;
            if (PyList_GET_SIZE(values) >= c.fold_count) {
                int due = 1;
                if (PyDict_GET_SIZE(c.fold_at) > 0) {
                    PyObject *r = PyObject_CallFunctionObjArgs(c.due, table, key, values, NULL);
                    if (r == NULL)
                        goto fail_kv;
                    due = PyObject_IsTrue(r);
                    Py_DECREF(r);
                    if (due < 0)
                        goto fail_kv;
                }
                if (due) {
                    Py_INCREF(values); /* the fold may replace the dict entry */
                    PyObject *r = PyObject_CallFunctionObjArgs(c.fold, table, key, values, NULL);
                    Py_DECREF(values);
                    if (r == NULL)
                        goto fail_kv;
                    long long delta = PyLong_AsLongLong(r);
                    Py_DECREF(r);
                    if (delta == -1 && PyErr_Occurred())
                        goto fail_kv;
                    size += delta;
                }
            }
        }
        Py_DECREF(key);
        Py_DECREF(value);
        count++;
        if (size >= capacity)
            break;
        continue;
    fail_kv:
        Py_DECREF(key);
        Py_DECREF(value);
        goto fail;
    }
    Py_XDECREF(last_value);
    return Py_BuildValue("LnO", size, count, more ? Py_True : Py_False);
fail:
    Py_XDECREF(last_value);
    return NULL;
}

/* ---- frames ---- */

static int
record_parts(PyObject *record, PyObject **key, PyObject **value)
{
    if (!PyTuple_Check(record) || PyTuple_GET_SIZE(record) != 2)
        return -1;
    *key = PyTuple_GET_ITEM(record, 0);
    *value = PyTuple_GET_ITEM(record, 1);
    return (PyBytes_Check(*key) && PyBytes_Check(*value)) ? 0 : -1;
}

static int
range_args(PyObject *args, PyObject **records, Py_ssize_t *start, Py_ssize_t *stop)
{
    if (!PyArg_ParseTuple(args, "O!nn", &PyList_Type, records, start, stop))
        return -1;
    Py_ssize_t n = PyList_GET_SIZE(*records);
    if (*start < 0 || *stop > n || *start > *stop) {
        PyErr_SetString(PyExc_IndexError, "record range out of bounds");
        return -1;
    }
    return 0;
}

/* records_size(records, start, stop): sum of len(key) + len(value) + 6. None if a record
 * is not a pair of bytes (the caller uses the Python reference). */
static PyObject *
native_records_size(PyObject *self, PyObject *args)
{
    PyObject *records;
    Py_ssize_t start, stop;
    if (range_args(args, &records, &start, &stop) < 0)
        return NULL;
    long long total = 0;
    for (Py_ssize_t i = start; i < stop; i++) {
        PyObject *k, *v;
        if (record_parts(PyList_GET_ITEM(records, i), &k, &v) < 0)
            Py_RETURN_NONE;
        total += PyBytes_GET_SIZE(k) + PyBytes_GET_SIZE(v) + 6;
    }
    return PyLong_FromLongLong(total);
}

static Py_ssize_t
varint_size(uint64_t v)
{
    Py_ssize_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static char *
put_varint(char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    return p;
}

/* frame(records, start, stop): the frame of records[start:stop]: a 4-byte little-endian
 * payload length and the RecordBatch. None if a record is not a pair of bytes. */
static PyObject *
native_frame(PyObject *self, PyObject *args)
{
    PyObject *records;
    Py_ssize_t start, stop;
    if (range_args(args, &records, &start, &stop) < 0)
        return NULL;
    uint64_t payload = 0;
    for (Py_ssize_t i = start; i < stop; i++) {
        PyObject *k, *v;
        if (record_parts(PyList_GET_ITEM(records, i), &k, &v) < 0)
            Py_RETURN_NONE;
        Py_ssize_t kn = PyBytes_GET_SIZE(k), vn = PyBytes_GET_SIZE(v);
        payload += (uint64_t)(2 + varint_size((uint64_t)kn) + kn + varint_size((uint64_t)vn) + vn);
    }
    if (payload > 0xFFFFFFFFull) {
        PyErr_SetString(PyExc_OverflowError, "frame larger than 4 GiB");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(4 + payload));
    if (out == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(out);
    p[0] = (char)(payload & 0xFF);
    p[1] = (char)((payload >> 8) & 0xFF);
    p[2] = (char)((payload >> 16) & 0xFF);
    p[3] = (char)((payload >> 24) & 0xFF);
    p += 4;
    for (int field = 0; field < 2; field++) {
        for (Py_ssize_t i = start; i < stop; i++) {
            PyObject *item = PyTuple_GET_ITEM(PyList_GET_ITEM(records, i), field);
            Py_ssize_t n = PyBytes_GET_SIZE(item);
            *p++ = field ? 0x12 : 0x0A;
            p = put_varint(p, (uint64_t)n);
            memcpy(p, PyBytes_AS_STRING(item), (size_t)n);
            p += n;
        }
    }
    return out;
}

/* decode_batch(payload) -> list of (key, value), or None when the payload is anything
 * but keys (field 1) and values (field 2) as well-formed length-delimited fields of equal
 * count: the caller then parses it with protobuf (which accepts or rejects it). */
static PyObject *
native_decode_batch(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *p = view.buf, *end = p + view.len;
    Py_ssize_t nkeys = 0, nvalues = 0, capacity = 256;
    Py_ssize_t *spans = PyMem_Malloc(sizeof(Py_ssize_t) * 3 * (size_t)capacity);
    PyObject *out = NULL;
    if (spans == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    while (p < end) {
        unsigned char tag = *p++;
        if (tag != 0x0A && tag != 0x12)
            goto fallback;
        uint64_t len = 0;
        int shift = 0;
        for (;;) {
            if (p >= end || shift > 28)
                goto fallback;
            unsigned char b = *p++;
            len |= (uint64_t)(b & 0x7F) << shift;
            shift += 7;
            if (!(b & 0x80))
                break;
        }
        if (len > (uint64_t)(end - p))
            goto fallback;
        Py_ssize_t index = nkeys + nvalues;
        if (index == capacity) {
            capacity *= 2;
            Py_ssize_t *grown = PyMem_Realloc(spans, sizeof(Py_ssize_t) * 3 * (size_t)capacity);
            if (grown == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            spans = grown;
        }
        spans[3 * index] = tag == 0x0A ? 0 : 1;
        spans[3 * index + 1] = (Py_ssize_t)(p - (const unsigned char *)view.buf);
        spans[3 * index + 2] = (Py_ssize_t)len;
        if (tag == 0x0A)
            nkeys++;
        else
            nvalues++;
        p += len;
    }
    if (nkeys != nvalues)
        goto fallback;
    out = PyList_New(nkeys);
    if (out == NULL)
        goto done;
    {
        const char *base = view.buf;
        Py_ssize_t ki = 0, vi = 0, total = nkeys + nvalues;
        for (Py_ssize_t i = 0; i < total; i++) {
            PyObject *b = PyBytes_FromStringAndSize(base + spans[3 * i + 1], spans[3 * i + 2]);
            if (b == NULL) {
                Py_CLEAR(out);
                goto done;
            }
            Py_ssize_t slot = spans[3 * i] == 0 ? ki++ : vi++;
            PyObject *pair = PyList_GET_ITEM(out, slot);
            if (pair == NULL) {
                pair = PyTuple_New(2);
                if (pair == NULL) {
                    Py_DECREF(b);
                    Py_CLEAR(out);
                    goto done;
                }
                /* a tuple with an empty slot: filled below before anyone sees it */
                PyList_SET_ITEM(out, slot, pair);
            }
            PyTuple_SET_ITEM(pair, spans[3 * i], b);
        }
    }
    goto done;
fallback:
    out = Py_None;
    Py_INCREF(out);
done:
    PyMem_Free(spans);
    PyBuffer_Release(&view);
    return out;
}

/* ---- the reducer's loop ---- */

/* Grouper(records, decode_key): the reducer's loop over sorted records (an iterator of
 * (key_bytes, value_bytes) pairs), as reducetask.run_reduce runs it: each key's values
 * as a lazy iterator (decoded as they are taken; values a reduce leaves are skipped, as
 * itertools.groupby skips them), the key decoded (str natively, others by
 * ``decode_key``). ``run`` reduces a chunk of keys at a time. */
typedef struct {
    PyObject_HEAD
    PyObject *records;     /* iterator of (key, value) */
    PyObject *decode_key;  /* fallback for keys that are not str */
    PyObject *decode_value; /* fallback for values that are not msgpack scalars */
    PyObject *pending;     /* the next record, read ahead; NULL if none read */
    PyObject *key;         /* the current group's encoded key */
    long generation;       /* bumped when a group ends: its values iterator stops */
    int exhausted;
} Grouper;

typedef struct {
    PyObject_HEAD
    Grouper *owner;
    long generation;
} Values;

static PyTypeObject GrouperType;
static PyTypeObject ValuesType;

/* Make ``pending`` hold the next record: 1, 0 at the end, -1 on error. */
static int
grouper_peek(Grouper *g)
{
    if (g->pending != NULL)
        return 1;
    if (g->exhausted)
        return 0;
    PyObject *record = PyIter_Next(g->records);
    if (record == NULL) {
        if (PyErr_Occurred())
            return -1;
        g->exhausted = 1;
        return 0;
    }
    if (!PyTuple_Check(record) || PyTuple_GET_SIZE(record) != 2 ||
        !PyBytes_Check(PyTuple_GET_ITEM(record, 0)) || !PyBytes_Check(PyTuple_GET_ITEM(record, 1))) {
        Py_DECREF(record);
        PyErr_SetString(PyExc_TypeError, "records must be (bytes, bytes) pairs");
        return -1;
    }
    g->pending = record;
    return 1;
}

/* Whether the pending record belongs to the current group. */
static int
grouper_same_key(Grouper *g)
{
    PyObject *k = PyTuple_GET_ITEM(g->pending, 0);
    Py_ssize_t n = PyBytes_GET_SIZE(k);
    return n == PyBytes_GET_SIZE(g->key) &&
           memcmp(PyBytes_AS_STRING(k), PyBytes_AS_STRING(g->key), (size_t)n) == 0;
}

static PyObject *
values_next(Values *self)
{
    Grouper *g = self->owner;
    if (self->generation != g->generation)
        return NULL;
    int got = grouper_peek(g);
    if (got <= 0 || !grouper_same_key(g))
        return NULL;
    PyObject *data = PyTuple_GET_ITEM(g->pending, 1);
    PyObject *value = msgpack_scalar((const unsigned char *)PyBytes_AS_STRING(data),
                                     PyBytes_GET_SIZE(data));
    if (value == NULL && !PyErr_Occurred())
        value = PyObject_CallOneArg(g->decode_value, data);
    Py_CLEAR(g->pending);
    return value;
}

static void
values_dealloc(Values *self)
{
    Py_XDECREF(self->owner);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject ValuesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kubemr._native.Values",
    .tp_basicsize = sizeof(Values),
    .tp_dealloc = (destructor)values_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One key's values, decoded as they are taken.",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)values_next,
};

static int
grouper_init(Grouper *self, PyObject *args, PyObject *kwds)
{
    PyObject *records, *decode_key, *decode_value;
    if (!PyArg_ParseTuple(args, "OOO", &records, &decode_key, &decode_value))
        return -1;
    PyObject *it = PyObject_GetIter(records);
    if (it == NULL)
        return -1;
    Py_XSETREF(self->records, it);
    Py_INCREF(decode_key);
    Py_XSETREF(self->decode_key, decode_key);
    Py_INCREF(decode_value);
    Py_XSETREF(self->decode_value, decode_value);
    return 0;
}

static void
grouper_dealloc(Grouper *self)
{
    Py_XDECREF(self->records);
    Py_XDECREF(self->decode_key);
    Py_XDECREF(self->decode_value);
    Py_XDECREF(self->pending);
    Py_XDECREF(self->key);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* records.format_line's common cases: a str key with a None value (the key) or an int
 * value (key TAB value); NULL without an exception for every other pair. */
static PyObject *
text_line(PyObject *args)
{
    if (PyTuple_GET_SIZE(args) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(args, 0)))
        return NULL;
    PyObject *key = PyTuple_GET_ITEM(args, 0), *value = PyTuple_GET_ITEM(args, 1);
    if (value == Py_None) {
        Py_INCREF(key);
        return key;
    }
    if (PyLong_CheckExact(value))
        return PyUnicode_FromFormat("%U\t%S", key, value);
    return NULL;
}

/* Call render(*item) for each item reduce yields for one key (``text``: render is
 * records.format_line, whose common cases are made here); append to lines. */
static int
render_all(PyObject *outputs, PyObject *render, int text, PyObject *lines)
{
    PyObject *it = PyObject_GetIter(outputs);
    if (it == NULL)
        return -1;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        PyObject *args = PyTuple_CheckExact(item) ? (Py_INCREF(item), item) : PySequence_Tuple(item);
        Py_DECREF(item);
        if (args == NULL)
            goto fail;
        PyObject *line = text ? text_line(args) : NULL;
        if (line == NULL && !PyErr_Occurred())
            line = PyObject_Call(render, args, NULL);
        Py_DECREF(args);
        if (line == NULL)
            goto fail;
        int appended = PyList_Append(lines, line);
        Py_DECREF(line);
        if (appended < 0)
            goto fail;
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
fail:
    Py_DECREF(it);
    return -1;
}

/* run(reduce, render, text, lines, max_groups, max_lines) -> groups reduced (0: no keys
 * left). Reduces keys until ``max_groups`` were reduced or ``lines`` holds
 * ``max_lines``; ``text``: ``render`` is records.format_line. */
static PyObject *
grouper_run(Grouper *self, PyObject *args)
{
    PyObject *reduce, *render, *lines;
    Py_ssize_t max_groups, max_lines;
    int text;
    if (!PyArg_ParseTuple(args, "OOpO!nn", &reduce, &render, &text, &PyList_Type, &lines,
                          &max_groups, &max_lines))
        return NULL;
    if (self->records == NULL) {
        PyErr_SetString(PyExc_ValueError, "Grouper not initialised");
        return NULL;
    }
    Py_ssize_t groups = 0;
    while (groups < max_groups && PyList_GET_SIZE(lines) < max_lines) {
        int got = grouper_peek(self);
        if (got < 0)
            return NULL;
        if (got == 0)
            break;
        PyObject *key_bytes = PyTuple_GET_ITEM(self->pending, 0);
        Py_INCREF(key_bytes);
        Py_XSETREF(self->key, key_bytes);
        self->generation++;
        groups++;
        PyObject *key;
        const char *kd = PyBytes_AS_STRING(key_bytes);
        Py_ssize_t kn = PyBytes_GET_SIZE(key_bytes);
        if (kn > 0 && (unsigned char)kd[0] == STR_TAG)
            key = PyUnicode_DecodeUTF8(kd + 1, kn - 1, "surrogatepass");
        else
            key = PyObject_CallOneArg(self->decode_key, key_bytes);
        if (key == NULL)
            return NULL;
        Values *values = PyObject_New(Values, &ValuesType);
        if (values == NULL) {
            Py_DECREF(key);
            return NULL;
        }
        Py_INCREF(self);
        values->owner = self;
        values->generation = self->generation;
        PyObject *outputs = PyObject_CallFunctionObjArgs(reduce, key, (PyObject *)values, NULL);
        Py_DECREF(key);
        Py_DECREF(values);
        if (outputs == NULL)
            return NULL;
        int rendered = render_all(outputs, render, text, lines);
        Py_DECREF(outputs);
        if (rendered < 0)
            return NULL;
        /* skip the values reduce left */
        for (;;) {
            got = grouper_peek(self);
            if (got < 0)
                return NULL;
            if (got == 0 || !grouper_same_key(self))
                break;
            Py_CLEAR(self->pending);
        }
        self->generation++;
    }
    return PyLong_FromSsize_t(groups);
}

static PyMethodDef grouper_methods[] = {
    {"run", (PyCFunction)grouper_run, METH_VARARGS,
     "run(reduce, render, text, lines, max_groups, max_lines) -> groups reduced"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject GrouperType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kubemr._native.Grouper",
    .tp_basicsize = sizeof(Grouper),
    .tp_dealloc = (destructor)grouper_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Grouper(records, decode_key, decode_value): the reducer's loop.",
    .tp_methods = grouper_methods,
    .tp_init = (initproc)grouper_init,
    .tp_new = PyType_GenericNew,
};

/* ---- sorting records by key ---- */

typedef struct {
    uint64_t prefix; /* the key's first 8 bytes, big-endian, zero-padded */
    const char *data;
    Py_ssize_t len;
    Py_ssize_t index;
    PyObject *item;
} SortEntry;

static int
entry_compare(const void *a, const void *b)
{
    const SortEntry *x = a, *y = b;
    if (x->prefix != y->prefix)
        return x->prefix < y->prefix ? -1 : 1;
    int c = bytes_compare(x->data, x->len, y->data, y->len);
    if (c)
        return c;
    return x->index < y->index ? -1 : (x->index > y->index);
}

/* sort_records(records) -> bool: sort a list of (key, value) pairs by key bytes in place,
 * stably (list.sort(key=itemgetter(0))); False, list untouched, if an item is not a
 * tuple whose first element is bytes (the caller sorts it with list.sort). */
static PyObject *
native_sort_records(PyObject *self, PyObject *arg)
{
    if (!PyList_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "records must be a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(arg);
    if (n < 2)
        Py_RETURN_TRUE;
    SortEntry *entries = PyMem_Malloc(sizeof(SortEntry) * (size_t)n);
    if (entries == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(arg, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 1 ||
            !PyBytes_Check(PyTuple_GET_ITEM(item, 0))) {
            PyMem_Free(entries);
            Py_RETURN_FALSE;
        }
        PyObject *key = PyTuple_GET_ITEM(item, 0);
        const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(key);
        Py_ssize_t len = PyBytes_GET_SIZE(key);
        uint64_t prefix = 0;
        for (int b = 0; b < 8; b++)
            prefix = (prefix << 8) | (b < len ? d[b] : 0);
        entries[i] = (SortEntry){prefix, (const char *)d, len, i, item};
    }
    qsort(entries, (size_t)n, sizeof(SortEntry), entry_compare);
    for (Py_ssize_t i = 0; i < n; i++)
        PyList_SET_ITEM(arg, i, entries[i].item); /* a permutation: references unchanged */
    PyMem_Free(entries);
    Py_RETURN_TRUE;
}

/* ---- the sort buffer: records in one arena, no Python object per record ---- */

/* SortBuffer(reduce_tasks): the sort buffer of a job without a combiner. Records are
 * encoded into one growing arena (key bytes, then value bytes) with an entry each
 * (partition, key prefix, offset, lengths); ``sort`` orders the entries by partition,
 * key and arrival (a stable sort by key per partition), and ``frames`` writes a
 * partition's records as run frames, grouped exactly as kubemr.runs frames records. */
typedef struct {
    uint64_t prefix;
    size_t offset;
    uint32_t part;
    uint32_t klen;
    uint32_t vlen;
} Entry;

#define ENTRY_BYTES ((long long)sizeof(Entry))

typedef struct {
    PyObject_HEAD
    long reduce_tasks;
    char *arena;
    size_t used, cap;
    Entry *entries;
    Py_ssize_t count, entries_cap;
    Py_ssize_t *starts; /* after sort: the first entry of each partition (reduce_tasks + 1) */
    int sorted;
} SortBuffer;

static PyTypeObject SortBufferType;

static int
sortbuffer_init(SortBuffer *self, PyObject *args, PyObject *kwds)
{
    long reduce_tasks;
    if (!PyArg_ParseTuple(args, "l", &reduce_tasks))
        return -1;
    if (reduce_tasks < 1) {
        PyErr_SetString(PyExc_ValueError, "reduce_tasks must be at least 1");
        return -1;
    }
    self->reduce_tasks = reduce_tasks;
    PyMem_Free(self->starts);
    self->starts = PyMem_Calloc((size_t)reduce_tasks + 1, sizeof(Py_ssize_t));
    return self->starts == NULL ? (PyErr_NoMemory(), -1) : 0;
}

static void
sortbuffer_free(SortBuffer *self)
{
    PyMem_Free(self->arena);
    PyMem_Free(self->entries);
    self->arena = NULL;
    self->entries = NULL;
    self->used = self->cap = 0;
    self->count = self->entries_cap = 0;
}

static void
sortbuffer_dealloc(SortBuffer *self)
{
    sortbuffer_free(self);
    PyMem_Free(self->starts);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
arena_reserve(SortBuffer *self, size_t more)
{
    if (self->used + more <= self->cap)
        return 0;
    size_t cap = self->cap ? self->cap : 1 << 16;
    while (cap < self->used + more)
        cap *= 2;
    char *grown = PyMem_Realloc(self->arena, cap);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->arena = grown;
    self->cap = cap;
    return 0;
}

/* Append one record; ``key`` and ``value`` are the encoded bytes. */
static int
sortbuffer_append(SortBuffer *self, long part, const char *key, Py_ssize_t klen,
                  const char *value, Py_ssize_t vlen)
{
    if (klen > UINT32_MAX || vlen > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "record larger than 4 GiB");
        return -1;
    }
    if (self->count == self->entries_cap) {
        Py_ssize_t cap = self->entries_cap ? self->entries_cap * 2 : 4096;
        Entry *grown = PyMem_Realloc(self->entries, sizeof(Entry) * (size_t)cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->entries = grown;
        self->entries_cap = cap;
    }
    if (arena_reserve(self, (size_t)(klen + vlen)) < 0)
        return -1;
    Entry *e = &self->entries[self->count++];
    e->offset = self->used;
    e->part = (uint32_t)part;
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)vlen;
    uint64_t prefix = 0;
    for (int b = 0; b < 8; b++)
        prefix = (prefix << 8) | (b < klen ? (unsigned char)key[b] : 0);
    e->prefix = prefix;
    memcpy(self->arena + self->used, key, (size_t)klen);
    memcpy(self->arena + self->used + klen, value, (size_t)vlen);
    self->used += (size_t)(klen + vlen);
    self->sorted = 0;
    return 0;
}

/* fill(pairs, spec, size, capacity, limit, encode_key, encode_value, none_value)
 *   -> (size, count, payload, more)
 * MapBuffer.add's loop into the arena; ``size`` grows by each record's bytes plus its
 * entry. Stops as native_fill does. */
static PyObject *
sortbuffer_fill(SortBuffer *self, PyObject *args)
{
    PyObject *pairs, *spec_obj, *fallback_key, *fallback_value, *none_value;
    long long size, capacity;
    Py_ssize_t limit;
    Spec spec;
    if (!PyArg_ParseTuple(args, "OOLLnOOO", &pairs, &spec_obj, &size, &capacity, &limit,
                          &fallback_key, &fallback_value, &none_value))
        return NULL;
    if (!PyIter_Check(pairs)) {
        PyErr_SetString(PyExc_TypeError, "pairs must be an iterator");
        return NULL;
    }
    if (spec_parse(spec_obj, &spec) < 0)
        return NULL;
    long long payload = 0;
    Py_ssize_t count = 0;
    int more = 1;
    while (count < limit) {
        PyObject *key, *value;
        int got = next_pair(pairs, &key, &value);
        if (got < 0)
            goto fail;
        if (got == 0) {
            more = 0;
            break;
        }
        PyObject *kb = encode_key(key, fallback_key);
        Py_DECREF(key);
        if (kb == NULL) {
            Py_DECREF(value);
            goto fail;
        }
        PyObject *vb = encode_value(value, fallback_value, none_value);
        Py_DECREF(value);
        if (vb == NULL || !PyBytes_Check(kb) || !PyBytes_Check(vb)) {
            if (vb != NULL)
                PyErr_SetString(PyExc_TypeError, "encoders must return bytes");
            Py_DECREF(kb);
            Py_XDECREF(vb);
            goto fail;
        }
        long p = spec_partition(&spec, PyBytes_AS_STRING(kb), PyBytes_GET_SIZE(kb));
        if (p < 0 || p >= self->reduce_tasks) {
            Py_DECREF(kb);
            Py_DECREF(vb);
            PyErr_SetString(PyExc_IndexError, "list index out of range");
            goto fail;
        }
        Py_ssize_t record = PyBytes_GET_SIZE(kb) + PyBytes_GET_SIZE(vb);
        int appended = sortbuffer_append(self, p, PyBytes_AS_STRING(kb), PyBytes_GET_SIZE(kb),
                                         PyBytes_AS_STRING(vb), PyBytes_GET_SIZE(vb));
        Py_DECREF(kb);
        Py_DECREF(vb);
        if (appended < 0)
            goto fail;
        payload += record;
        size += record + ENTRY_BYTES;
        count++;
        if (size >= capacity)
            break;
    }
    spec_release(&spec);
    return Py_BuildValue("LnLO", size, count, payload, more ? Py_True : Py_False);
fail:
    spec_release(&spec);
    return NULL;
}

static const char *sort_arena; /* qsort has no context argument */

static int
arena_entry_compare(const void *a, const void *b)
{
    const Entry *x = a, *y = b;
    if (x->part != y->part)
        return x->part < y->part ? -1 : 1;
    if (x->prefix != y->prefix)
        return x->prefix < y->prefix ? -1 : 1;
    int c = bytes_compare(sort_arena + x->offset, x->klen, sort_arena + y->offset, y->klen);
    if (c)
        return c;
    return x->offset < y->offset ? -1 : (x->offset > y->offset); /* arrival order */
}

static PyObject *
sortbuffer_sort(SortBuffer *self, PyObject *noargs)
{
    sort_arena = self->arena; /* the GIL is held throughout */
    qsort(self->entries, (size_t)self->count, sizeof(Entry), arena_entry_compare);
    Py_ssize_t i = 0;
    for (long p = 0; p <= self->reduce_tasks; p++) {
        while (i < self->count && self->entries[i].part < (uint32_t)p)
            i++;
        self->starts[p] = i;
    }
    self->starts[self->reduce_tasks] = self->count;
    self->sorted = 1;
    Py_RETURN_NONE;
}

static long long
entries_size(const Entry *e, Py_ssize_t n)
{
    long long total = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        total += (long long)e[i].klen + e[i].vlen + 6;
    return total;
}

static PyObject *
entries_frame(const SortBuffer *self, const Entry *e, Py_ssize_t n)
{
    uint64_t payload = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        payload += (uint64_t)(2 + varint_size(e[i].klen) + e[i].klen + varint_size(e[i].vlen) +
                              e[i].vlen);
    if (payload > 0xFFFFFFFFull) {
        PyErr_SetString(PyExc_OverflowError, "frame larger than 4 GiB");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(4 + payload));
    if (out == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(out);
    for (int b = 0; b < 4; b++)
        p[b] = (char)((payload >> (8 * b)) & 0xFF);
    p += 4;
    for (int field = 0; field < 2; field++) {
        for (Py_ssize_t i = 0; i < n; i++) {
            uint32_t len = field ? e[i].vlen : e[i].klen;
            const char *src = self->arena + e[i].offset + (field ? e[i].klen : 0);
            *p++ = field ? 0x12 : 0x0A;
            p = put_varint(p, len);
            memcpy(p, src, len);
            p += len;
        }
    }
    return out;
}

/* runs._split_frames over entries: append (frame, count) pairs to ``out``. */
static int
split_entry_frames(const SortBuffer *self, const Entry *e, Py_ssize_t n, long long size,
                   long long batch, PyObject *out)
{
    if (size <= 2 * batch || n == 1) {
        PyObject *frame = entries_frame(self, e, n);
        if (frame == NULL)
            return -1;
        PyObject *pair = Py_BuildValue("Nn", frame, n);
        if (pair == NULL)
            return -1;
        int appended = PyList_Append(out, pair);
        Py_DECREF(pair);
        return appended;
    }
    Py_ssize_t half = n / 2;
    if (split_entry_frames(self, e, half, entries_size(e, half), batch, out) < 0)
        return -1;
    return split_entry_frames(self, e + half, n - half, entries_size(e + half, n - half), batch,
                              out);
}

/* frames(partition, start, take, batch_bytes, max_group, max_bytes)
 *   -> (frames, start, take)
 * The run frames of the sorted partition's records from its ``start``-th on, grouped as
 * kubemr.runs._framed groups them (``take``: the next group's size, FIRST_GROUP at
 * first), until about ``max_bytes`` of frames are made; frames is a list of
 * (frame, records); an empty list at the end of the partition. */
static PyObject *
sortbuffer_frames(SortBuffer *self, PyObject *args)
{
    long part;
    Py_ssize_t start, take, max_group;
    long long batch, max_bytes;
    if (!PyArg_ParseTuple(args, "lnnLnL", &part, &start, &take, &batch, &max_group, &max_bytes))
        return NULL;
    if (!self->sorted || part < 0 || part >= self->reduce_tasks) {
        PyErr_SetString(PyExc_ValueError, "frames of an unsorted buffer or no such partition");
        return NULL;
    }
    Py_ssize_t first = self->starts[part], end = self->starts[part + 1];
    Py_ssize_t i = first + start;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    long long made = 0;
    while (i < end && made < max_bytes) {
        Py_ssize_t n = take < end - i ? take : end - i;
        long long size = entries_size(self->entries + i, n);
        if (split_entry_frames(self, self->entries + i, n, size, batch, out) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        made += size;
        i += n;
        long long next = batch * n / (size > 1 ? size : 1);
        take = (Py_ssize_t)(next < 1 ? 1 : (next > max_group ? max_group : next));
    }
    return Py_BuildValue("Nnn", out, i - first, take);
}

static PyObject *
sortbuffer_clear(SortBuffer *self, PyObject *noargs)
{
    sortbuffer_free(self);
    self->sorted = 0;
    Py_RETURN_NONE;
}

static PyObject *
sortbuffer_len(SortBuffer *self, PyObject *noargs)
{
    return PyLong_FromSsize_t(self->count);
}

static PyMethodDef sortbuffer_methods[] = {
    {"fill", (PyCFunction)sortbuffer_fill, METH_VARARGS,
     "fill(pairs, spec, size, capacity, limit, encode_key, encode_value, none_value)"},
    {"sort", (PyCFunction)sortbuffer_sort, METH_NOARGS, "Sort by partition, key, arrival."},
    {"frames", (PyCFunction)sortbuffer_frames, METH_VARARGS,
     "frames(partition, start, take, batch_bytes, max_group, max_bytes)"},
    {"clear", (PyCFunction)sortbuffer_clear, METH_NOARGS, "Drop every record; free memory."},
    {"records", (PyCFunction)sortbuffer_len, METH_NOARGS, "Records held."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SortBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kubemr._native.SortBuffer",
    .tp_basicsize = sizeof(SortBuffer),
    .tp_dealloc = (destructor)sortbuffer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "SortBuffer(reduce_tasks): encoded records in one arena.",
    .tp_methods = sortbuffer_methods,
    .tp_init = (initproc)sortbuffer_init,
    .tp_new = PyType_GenericNew,
};

/* ---- the k-way merge of sorted runs ---- */

/* Merger(batches): the records of sorted runs in key order, equal keys in run order (then
 * their order within the run), as lists of at most MERGED_BATCH records; ``batches``
 * is a list of iterators of record lists, one per run (kubemr.runs.merge_batches). A
 * heap of the runs' current records, keyed by (key bytes, run index). */
#define MERGED_BATCH 4096

typedef struct {
    PyObject *iter;
    PyObject *batch; /* the current list of records, NULL once the run is done */
    Py_ssize_t pos;
} Cursor;

typedef struct {
    PyObject_HEAD
    Cursor *cursors;
    Py_ssize_t count;
    Py_ssize_t *heap;
    Py_ssize_t heap_size;
    int started;
} Merger;

static PyTypeObject MergerType;

/* The current record's key of cursor ``i`` (a checked record). */
static inline PyObject *
cursor_key(Merger *m, Py_ssize_t i)
{
    Cursor *c = &m->cursors[i];
    return PyTuple_GET_ITEM(PyList_GET_ITEM(c->batch, c->pos), 0);
}

static int
heap_less(Merger *m, Py_ssize_t a, Py_ssize_t b)
{
    PyObject *ka = cursor_key(m, a), *kb = cursor_key(m, b);
    int c = bytes_compare(PyBytes_AS_STRING(ka), PyBytes_GET_SIZE(ka), PyBytes_AS_STRING(kb),
                          PyBytes_GET_SIZE(kb));
    return c < 0 || (c == 0 && a < b);
}

static void
heap_down(Merger *m, Py_ssize_t i)
{
    for (;;) {
        Py_ssize_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < m->heap_size && heap_less(m, m->heap[l], m->heap[best]))
            best = l;
        if (r < m->heap_size && heap_less(m, m->heap[r], m->heap[best]))
            best = r;
        if (best == i)
            return;
        Py_ssize_t tmp = m->heap[i];
        m->heap[i] = m->heap[best];
        m->heap[best] = tmp;
        i = best;
    }
}

/* Check the record at the cursor; -1 with TypeError if it is not (bytes, bytes). */
static int
cursor_check(Cursor *c)
{
    PyObject *r = PyList_GET_ITEM(c->batch, c->pos);
    if (PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 2 && PyBytes_Check(PyTuple_GET_ITEM(r, 0)))
        return 0;
    PyErr_SetString(PyExc_TypeError, "runs must hold (bytes, bytes) records");
    return -1;
}

/* Load the cursor's next non-empty batch: 1, 0 when the run is done, -1 on error. */
static int
cursor_load(Cursor *c)
{
    Py_CLEAR(c->batch);
    c->pos = 0;
    for (;;) {
        PyObject *batch = PyIter_Next(c->iter);
        if (batch == NULL)
            return PyErr_Occurred() ? -1 : 0;
        if (!PyList_Check(batch)) {
            Py_DECREF(batch);
            PyErr_SetString(PyExc_TypeError, "runs must yield lists of records");
            return -1;
        }
        if (PyList_GET_SIZE(batch) > 0) {
            c->batch = batch;
            return cursor_check(c) < 0 ? -1 : 1;
        }
        Py_DECREF(batch);
    }
}

static int
merger_init(Merger *self, PyObject *args, PyObject *kwds)
{
    PyObject *sources;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &sources))
        return -1;
    if (self->cursors != NULL) {
        PyErr_SetString(PyExc_ValueError, "Merger initialised twice");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(sources);
    self->cursors = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Cursor));
    self->heap = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Py_ssize_t));
    if (self->cursors == NULL || self->heap == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->count = n;
    for (Py_ssize_t i = 0; i < n; i++) {
        self->cursors[i].iter = PyObject_GetIter(PyList_GET_ITEM(sources, i));
        if (self->cursors[i].iter == NULL)
            return -1;
    }
    return 0;
}

static void
merger_dealloc(Merger *self)
{
    for (Py_ssize_t i = 0; self->cursors != NULL && i < self->count; i++) {
        Py_XDECREF(self->cursors[i].iter);
        Py_XDECREF(self->cursors[i].batch);
    }
    PyMem_Free(self->cursors);
    PyMem_Free(self->heap);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
merger_next(Merger *self)
{
    if (self->cursors == NULL) {
        PyErr_SetString(PyExc_ValueError, "Merger not initialised");
        return NULL;
    }
    if (!self->started) { /* the first batch of every run, in run order */
        self->started = 1;
        for (Py_ssize_t i = 0; i < self->count; i++) {
            int got = cursor_load(&self->cursors[i]);
            if (got < 0)
                return NULL;
            if (got)
                self->heap[self->heap_size++] = i;
        }
        for (Py_ssize_t i = self->heap_size / 2 - 1; i >= 0; i--)
            heap_down(self, i);
    }
    if (self->heap_size == 0)
        return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    while (self->heap_size > 0 && PyList_GET_SIZE(out) < MERGED_BATCH) {
        Py_ssize_t top = self->heap[0];
        Cursor *c = &self->cursors[top];
        if (PyList_Append(out, PyList_GET_ITEM(c->batch, c->pos)) < 0)
            goto fail;
        if (++c->pos < PyList_GET_SIZE(c->batch)) {
            if (cursor_check(c) < 0)
                goto fail;
        } else {
            int got = cursor_load(c);
            if (got < 0)
                goto fail;
            if (!got) {
                self->heap[0] = self->heap[--self->heap_size];
                if (self->heap_size == 0)
                    break;
            }
        }
        heap_down(self, 0);
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyTypeObject MergerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kubemr._native.Merger",
    .tp_basicsize = sizeof(Merger),
    .tp_dealloc = (destructor)merger_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Merger(batches): sorted runs merged, as lists of records.",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)merger_next,
    .tp_init = (initproc)merger_init,
    .tp_new = PyType_GenericNew,
};

static PyObject *
native_crc32(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    uint32_t c = crc32_of(view.buf, view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(c);
}

static PyMethodDef methods[] = {
    {"crc32", native_crc32, METH_O, "zlib.crc32 of a bytes-like object."},
    {"partition", native_partition, METH_VARARGS, "partition(key, spec) -> int"},
    {"partitions", native_partitions, METH_VARARGS, "partitions(keys, spec) -> list[int]"},
    {"encode_key", native_encode_key, METH_VARARGS, "encode_key(fallback, key) -> bytes"},
    {"encode_value", native_encode_value, METH_VARARGS,
     "encode_value(fallback, none_value, value) -> bytes"},
    {"decode_value", native_decode_value, METH_VARARGS, "decode_value(fallback, data) -> value"},
    {"combine_fill", native_combine_fill, METH_VARARGS, "CombineTable.add's loop."},
    {"values_cost", native_values_cost, METH_VARARGS,
     "values_cost(values, costs, sizeof, value_overhead) -> combinetable._cost"},
    {"records_size", native_records_size, METH_VARARGS,
     "records_size(records, start, stop) -> int | None"},
    {"frame", native_frame, METH_VARARGS, "frame(records, start, stop) -> bytes | None"},
    {"decode_batch", native_decode_batch, METH_O, "decode_batch(payload) -> list | None"},
    {"sort_records", native_sort_records, METH_O, "sort_records(records) -> bool"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "kubemr._native",
    "The map and shuffle path's hot loops in C (see kubemr.native).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    crc_init();
    if (sizes_init() < 0)
        return NULL;
    if (PyType_Ready(&GrouperType) < 0 || PyType_Ready(&ValuesType) < 0 ||
        PyType_Ready(&SortBufferType) < 0 || PyType_Ready(&MergerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "ENTRY_BYTES", (long)sizeof(Entry)) < 0 ||
        PyModule_AddObjectRef(m, "Grouper", (PyObject *)&GrouperType) < 0 ||
        PyModule_AddObjectRef(m, "SortBuffer", (PyObject *)&SortBufferType) < 0 ||
        PyModule_AddObjectRef(m, "Merger", (PyObject *)&MergerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
