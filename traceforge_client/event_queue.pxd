# Types for compiling event_queue.py with Cython (see hot_path.py).

cdef class EventQueue:
    cdef public object items, wake, on_first_event, lock
    cdef public Py_ssize_t limit, wake_at
    cdef public bint closed
    cdef public dict dropped, dropped_total

    cpdef count_drop(self, str reason, object count)
