/** main.ts imports this before any other module, so the process restarts before they load (allocator.ts). */
import { retainFreedMemory } from "./allocator.ts";

retainFreedMemory();
