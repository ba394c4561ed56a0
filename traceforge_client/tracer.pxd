# Types for compiling tracer.py with Cython (see hot_path.py). The .py file stays the one
# source: this only tells the compiler which names are C-level and what they hold.
# Compiled, the module globals below are C variables: they are not module attributes,
# and patching to_json from outside does not reach trace_step (it calls it directly).
cimport cython

cdef object _time_ns, _step_numbers, _json_encoder, _encode_json
cdef object StepStart, StepEnd, Current, _current, context, switch, runtime
cdef Py_ssize_t MAX_NAME

@cython.locals(data=bytes)
cpdef object to_json(object value)

cdef class trace_step:
    cdef public object name, input_data, model, metadata
    cdef public object cost_per_input_token, cost_per_output_token
    cdef dict _record
    cdef object _step_id, _parent, _token, _auto_run, _start_ns
