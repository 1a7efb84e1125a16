"""The tools around the pipeline: `inspection.py` (codegen inspect: inputs, candidate
outputs, op counts), `picture.py` (the graph as DOT/SVG), `dump.py` + `pth.py` (codegen dump:
a state_dict .pth written without pickle), `support.py` (the README's op table)."""
