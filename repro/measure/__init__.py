"""What the toolkit measures besides accuracy, one module each:

* ``flops``: GFLOPs and parameters of sub-networks (the paper's fvcore convention)
* ``interleaved``: fair wall-clock timing of candidates in interleaved rounds
* ``latency``: inference latency (and energy) of sub-networks and width variants (Figures 5b, 6a)
* ``energy``: hardware energy counters (NVML, RAPL) and windowed energy per call
* ``train_cost``: training-step time per method, extrapolated to an epoch (Table 2)
* ``probes``: inside the network: residual norm ratios (Figure 3) and Grad-CAM (Figure 8)

Import the module you need (``from repro.measure.latency import measure_latency``): this
package imports nothing itself, so using one does not load the others' dependencies.
"""
