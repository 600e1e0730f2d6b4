#!/usr/bin/env node
import { installProcessHandlers, main } from './main.js';

installProcessHandlers();
process.exitCode = await main(process.argv.slice(2));
