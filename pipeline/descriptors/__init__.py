"""images/*.yaml -> a validated Plan. Pydantic lives here, at the boundary, and nowhere else."""
