"""The job SDK: the DSL a job is written in, and loading a job from its entry point."""
