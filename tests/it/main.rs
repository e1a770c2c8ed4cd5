mod simulator;
mod wire_captures;
