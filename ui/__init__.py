"""The dashboard's shared UI layer: session state, cached resources, charts, messages.

Pages import these helpers so that each page stays "read widgets, call core,
draw". Nothing here does NumPy or Keras maths: the numbers come from ``core``.

- :mod:`ui.state`     the session-state keys, their defaults, and how configs
                      and widgets stay in step across page switches
- :mod:`ui.resources` ``st.cache_resource`` / ``st.cache_data`` wrappers around
                      the run store, the worker, records, arrays and models
- :mod:`ui.feedback`  page frame, empty states, and errors shown without tracebacks
- :mod:`ui.charts`    plotly figures with one house style (imports plotly)
- :mod:`ui.sidebar`   the sidebar app.py draws on every page
"""
