"""The toy world: a synthetic scene world in which the whole CSR loop runs on a CPU in minutes.

``build.run`` (step ``toyworld-build``) makes scenes, a tiny LLaVA and a tiny CLIP saved as ordinary
Hugging Face folders, the CSR prompt set and POPE / CHAIR benchmark files; ``judge`` tells, for any
response, which objects it names that the scene lacks. The world's rules are in ``vocab``,
``scenes`` and ``language``, and in the README.md written into every built world.
"""
