"""The log service: event records from every service into ``logdata``, and the operators' view."""
