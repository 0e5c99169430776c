/*
 * C versions of the per-message loops of the read path, for speed only.
 *
 * Each function here has a pure-Python twin that is the reference for
 * what it does: `frames._run_starts`, `uuids._fields_of_strings` and
 * `json_framing._fields_at` (a UUID string looked up in each decoded
 * document, then parsed). The
 * Python modules use these when the extension was built (it is optional:
 * an install without a C compiler runs the twins), and the tests hold each
 * pair to the same results on the same inputs. Anything unusual, such as a
 * clock beyond 64 bits, a producer that is not 6 bytes or a UUID string
 * that is not canonical, is handed back to the Python twin rather than
 * handled twice: these functions raise ValueError or return None for it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* A column of small integers: `bytes` is read directly. */
static int
column_int(PyObject *column, PyObject *fast, Py_ssize_t i, unsigned long long *out)
{
    if (fast == NULL) {
        *out = (unsigned char)PyBytes_AS_STRING(column)[i];
        return 0;
    }
    PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
    if (!PyLong_Check(item)) {
        PyErr_SetString(PyExc_ValueError, "not an int");
        return -1;
    }
    *out = PyLong_AsUnsignedLongLong(item);
    if (*out == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "not a 64-bit unsigned int");
        return -1;
    }
    return 0;
}

static PyObject *
run_starts(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "run_starts(producers, clocks, flags)");
        return NULL;
    }
    PyObject *producers = PySequence_Fast(args[0], "producers must be a sequence");
    if (producers == NULL)
        return NULL;
    PyObject *clocks = PySequence_Fast(args[1], "clocks must be a sequence");
    if (clocks == NULL) {
        Py_DECREF(producers);
        return NULL;
    }
    PyObject *flags = NULL;
    if (!PyBytes_Check(args[2])) {
        flags = PySequence_Fast(args[2], "flags must be a sequence");
        if (flags == NULL) {
            Py_DECREF(producers);
            Py_DECREF(clocks);
            return NULL;
        }
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(clocks);
    Py_ssize_t nflags = flags ? PySequence_Fast_GET_SIZE(flags) : PyBytes_GET_SIZE(args[2]);
    if (PySequence_Fast_GET_SIZE(producers) < n)
        n = PySequence_Fast_GET_SIZE(producers);
    if (nflags < n)
        n = nflags;

    PyObject *starts = PyList_New(0);
    if (starts == NULL)
        goto error;
    const char *producer = NULL;
    unsigned long long last = 0, flag = 0;
    int after_zero = 1; /* Index 0 begins a run. */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PySequence_Fast_GET_ITEM(producers, i);
        if (!PyBytes_Check(p) || PyBytes_GET_SIZE(p) != 6) {
            PyErr_SetString(PyExc_ValueError, "a producer is not 6 bytes");
            goto error;
        }
        unsigned long long c, f;
        if (column_int(args[1], clocks, i, &c) < 0 || column_int(args[2], flags, i, &f) < 0)
            goto error;
        const char *bytes = PyBytes_AS_STRING(p);
        if (after_zero || c <= last || f != flag || memcmp(bytes, producer, 6) != 0) {
            PyObject *index = PyLong_FromSsize_t(i);
            if (index == NULL || PyList_Append(starts, index) < 0) {
                Py_XDECREF(index);
                goto error;
            }
            Py_DECREF(index);
            producer = bytes;
            flag = f;
        }
        last = c;
        after_zero = c == 0;
    }
    Py_DECREF(producers);
    Py_DECREF(clocks);
    Py_XDECREF(flags);
    return starts;

error:
    Py_XDECREF(starts);
    Py_DECREF(producers);
    Py_DECREF(clocks);
    Py_XDECREF(flags);
    return NULL;
}

/* Hex digit values; -1 for what is not one. */
static signed char hex_values[256];

static void
init_hex_values(void)
{
    memset(hex_values, -1, sizeof hex_values);
    for (int i = 0; i < 10; i++)
        hex_values['0' + i] = (signed char)i;
    for (int i = 0; i < 6; i++) {
        hex_values['a' + i] = (signed char)(10 + i);
        hex_values['A' + i] = (signed char)(10 + i);
    }
}

/* The 16 bytes of a canonical UUID string; -1 if it is not one. */
static int
parse_uuid(PyObject *text, unsigned char out[16])
{
    if (!PyUnicode_Check(text) || !PyUnicode_IS_COMPACT_ASCII(text) ||
        PyUnicode_GET_LENGTH(text) != 36)
        return -1;
    const unsigned char *s = (const unsigned char *)PyUnicode_DATA(text);
    if (s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
        return -1;
    int k = 0;
    for (int i = 0; i < 36; i += 2) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            i++;
        int hi = hex_values[s[i]], lo = hex_values[s[i + 1]];
        if (hi < 0 || lo < 0)
            return -1;
        out[k++] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

#define PRODUCER_CACHE 16

/* The object at `path` (a tuple of str keys) in nested dicts, borrowed;
 * NULL, without an exception set, where there is none. */
static PyObject *
lookup(PyObject *doc, PyObject *path)
{
    Py_ssize_t depth = PyTuple_GET_SIZE(path);
    for (Py_ssize_t k = 0; k < depth; k++) {
        if (!PyDict_Check(doc))
            return NULL;
        doc = PyDict_GetItemWithError(doc, PyTuple_GET_ITEM(path, k));
        if (doc == NULL)
            return NULL;
    }
    return doc;
}

/* Producers, clocks and flags of the UUID strings in `texts`, or of the
 * documents in `docs` at `path`; None where one is not a canonical UUID. */
static PyObject *
fields_of(PyObject *texts_arg, PyObject *path)
{
    PyObject *texts = PySequence_Fast(texts_arg, "texts must be a sequence");
    if (texts == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(texts);
    PyObject *producers = PyTuple_New(n);
    PyObject *clocks = PyTuple_New(n);
    PyObject *flags = PyBytes_FromStringAndSize(NULL, n);
    PyObject *wide_flags = NULL; /* A tuple, once a flag does not fit a byte. */
    PyObject *result = NULL;
    if (producers == NULL || clocks == NULL || flags == NULL)
        goto done;
    unsigned char *flag_bytes = (unsigned char *)PyBytes_AS_STRING(flags);
    PyObject *cache[PRODUCER_CACHE];
    int cached = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char u[16];
        PyObject *text = PySequence_Fast_GET_ITEM(texts, i);
        if (path != NULL) {
            text = lookup(text, path);
            if (text == NULL && PyErr_Occurred())
                goto done;
        }
        if (text == NULL || parse_uuid(text, u) < 0) {
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
        unsigned long long time_low = (unsigned long long)u[0] << 24 | u[1] << 16 | u[2] << 8 | u[3];
        unsigned long long time_mid = (unsigned long long)u[4] << 8 | u[5];
        unsigned long long time_hi = ((unsigned long long)u[6] << 8 | u[7]) & 0x0FFF;
        unsigned long long clock =
            time_hi << 52 | time_mid << 36 | time_low << 4 | ((u[8] >> 2) & 0xF);
        unsigned int flag = (unsigned int)(u[8] & 0x3) << 8 | u[9];
        /* A batch has few producers: share one bytes object per producer
         * (the sequencer compares them run by run). */
        PyObject *producer = NULL;
        for (int k = 0; k < cached; k++) {
            if (memcmp(PyBytes_AS_STRING(cache[k]), u + 10, 6) == 0) {
                producer = cache[k];
                Py_INCREF(producer);
                break;
            }
        }
        if (producer == NULL) {
            producer = PyBytes_FromStringAndSize((const char *)u + 10, 6);
            if (producer != NULL && cached < PRODUCER_CACHE)
                cache[cached++] = producer; /* Borrowed: the tuple holds it. */
        }
        PyObject *clock_obj = PyLong_FromUnsignedLongLong(clock);
        if (producer == NULL || clock_obj == NULL) {
            Py_XDECREF(producer);
            Py_XDECREF(clock_obj);
            goto done;
        }
        PyTuple_SET_ITEM(producers, i, producer);
        PyTuple_SET_ITEM(clocks, i, clock_obj);
        if (flag > 0xFF && wide_flags == NULL) {
            wide_flags = PyTuple_New(n);
            if (wide_flags == NULL)
                goto done;
            for (Py_ssize_t j = 0; j < i; j++)
                PyTuple_SET_ITEM(wide_flags, j, PyLong_FromLong(flag_bytes[j]));
        }
        if (wide_flags != NULL) {
            PyObject *flag_obj = PyLong_FromLong(flag);
            if (flag_obj == NULL)
                goto done;
            PyTuple_SET_ITEM(wide_flags, i, flag_obj);
        } else {
            flag_bytes[i] = (unsigned char)flag;
        }
    }
    result = PyTuple_Pack(3, producers, clocks, wide_flags ? wide_flags : flags);

done:
    Py_DECREF(texts);
    Py_XDECREF(producers);
    Py_XDECREF(clocks);
    Py_XDECREF(flags);
    Py_XDECREF(wide_flags);
    return result;
}

static PyObject *
fields_of_strings(PyObject *module, PyObject *texts)
{
    return fields_of(texts, NULL);
}

static PyObject *
fields_at(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "fields_at(docs, path: tuple)");
        return NULL;
    }
    return fields_of(args[0], args[1]);
}

static PyMethodDef methods[] = {
    {"run_starts", (PyCFunction)(void (*)(void))run_starts, METH_FASTCALL,
     "run_starts(producers, clocks, flags) -> list of run start indices"},
    {"fields_of_strings", (PyCFunction)fields_of_strings, METH_O,
     "fields_of_strings(texts) -> (producers, clocks, flags) or None"},
    {"fields_at", (PyCFunction)(void (*)(void))fields_at, METH_FASTCALL,
     "fields_at(docs, path) -> (producers, clocks, flags) or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "C versions of per-message loops of the read path.",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    init_hex_values();
    return PyModule_Create(&module);
}
