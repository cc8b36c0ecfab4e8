/**
 * Entry of the panels' bundle (dist/webviews/panels.js): registers the component toolkit, reports
 * CSP violations, and mounts the panel the host page names (<div id="app" data-panel="...">).
 */
import { mount } from 'svelte';
import App from './App.svelte';
import { reportCspViolations } from './host';
import { registerToolkit } from './ui/toolkit';
import './theme.css';

registerToolkit();
reportCspViolations();
const target = document.getElementById('app');
if (target) mount(App, { target, props: { panel: target.dataset.panel ?? '' } });
