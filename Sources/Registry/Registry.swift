// Registry module
