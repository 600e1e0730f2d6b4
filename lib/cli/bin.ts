#!/usr/bin/env node
import { installProcessHandlers, main } from './main.js';

installProcessHandlers();
void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
