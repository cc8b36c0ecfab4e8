// Types of .svelte imports for tsc (the root typecheck reaches them through the component tests).
declare module '*.svelte' {
  import type { Component } from 'svelte';
  const component: Component<any>;
  export default component;
}
